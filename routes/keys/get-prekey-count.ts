import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { countPrekeys } from '../../db/prekeys.js'
import { bearer, errorReplies } from '../schemas.js'

export const PrekeyCountReply = Type.Object({
  count: Type.Integer({ description: 'unclaimed EC one-time prekeys' }),
  pqCount: Type.Integer({ description: 'unclaimed Kyber one-time prekeys (the last-resort key not counted)' })
})

const getPrekeyCount: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/v1/keys', {
    schema: {
      summary: "Your device's unclaimed one-time prekeys",
      description: 'Of the device of the token. A claim that leaves fewer than 10 of either kind also sends this device `prekeys_low`.',
      tags: ['keys'],
      security: bearer,
      response: { 200: PrekeyCountReply, ...errorReplies(401) }
    },
    onRequest: fastify.authenticate
  }, async (request) => await countPrekeys(fastify.db, request.device.key))
}

export default getPrekeyCount
