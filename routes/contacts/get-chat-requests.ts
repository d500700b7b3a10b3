import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listPendingRequests } from '../../db/contacts.js'
import { iso } from '../../db/time.js'
import { afterSession } from '../../plugins/app/auth.js'
import { Timestamp, bearer, errorReplies } from '../schemas.js'

export const ChatRequestsReply = Type.Object({
  pending_requests: Type.Array(Type.Object({
    requester_username: Type.String(),
    status: Type.Literal('pending'),
    timestamp: Timestamp
  }))
})

const getChatRequests: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/get_chat_requests', {
    schema: {
      summary: 'List the chat requests waiting for your answer',
      tags: ['contacts'],
      security: bearer,
      response: { 200: ChatRequestsReply, ...errorReplies(401) }
    },
    onRequest: fastify.authenticateDeferred
  }, async (request) => {
    const rows = await afterSession(request, listPendingRequests(fastify.db, request.user.id))
    return {
      pending_requests: rows.map(row => ({ requester_username: row.requester_username, status: 'pending' as const, timestamp: iso(row.created_at) }))
    }
  })
}

export default getChatRequests
