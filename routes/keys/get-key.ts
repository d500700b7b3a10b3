import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findRecipientKey } from '../../db/contacts.js'
import { afterSession } from '../../plugins/app/auth.js'
import { KeyNotFound, UserNotFound } from '../../errors.js'
import { Username, bearer, errorReplies } from '../schemas.js'

export const GetKeyQuery = Type.Object({ username: Username })
export const GetKeyReply = Type.Object({ username: Type.String(), public_key: Type.String() })

const getKey: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/get_key', {
    schema: {
      summary: "Fetch a user's public key",
      description: 'Your contacts and yourself: unlimited. Any other name (an unknown one too) counts against RATE_LIMIT_LOOKUPS, different names per account, shared with get_messages: then 429 with retry-after.',
      tags: ['keys'],
      security: bearer,
      querystring: GetKeyQuery,
      response: { 200: GetKeyReply, ...errorReplies(400, 401, 404, 429) }
    },
    onRequest: fastify.authenticateDeferred
  }, async (request, reply) => {
    const { username } = request.query
    // the key is read with the user, but only answered once the lookup is within its limit
    const user = await afterSession(request, findRecipientKey(fastify.db, request.user.id, username))
    await fastify.limitLookup(request, reply, username, user)
    if (user === undefined) throw new UserNotFound(username)
    if (user.public_key === null) throw new KeyNotFound(user.username)
    return { username: user.username, public_key: user.public_key }
  })
}

export default getKey
