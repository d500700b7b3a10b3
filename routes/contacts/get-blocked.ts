import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listBlocked } from '../../db/contacts.js'
import { iso } from '../../db/time.js'
import { afterSession } from '../../plugins/app/auth.js'
import { Timestamp, bearer, errorReplies } from '../schemas.js'

export const BlockedReply = Type.Object({
  blocked: Type.Array(Type.Object({ username: Type.String(), timestamp: Timestamp }))
})

const getBlocked: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/get_blocked', {
    schema: {
      summary: 'List the users you have blocked',
      tags: ['contacts'],
      security: bearer,
      response: { 200: BlockedReply, ...errorReplies(401) }
    },
    onRequest: fastify.authenticateDeferred
  }, async (request) => {
    const rows = await afterSession(request, listBlocked(fastify.db, request.user.id))
    return { blocked: rows.map(row => ({ username: row.username, timestamp: iso(row.created_at) })) }
  })
}

export default getBlocked
