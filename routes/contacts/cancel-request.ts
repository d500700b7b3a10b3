import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { cancelRequest } from '../../db/contacts.js'
import { requireUser } from '../../db/users.js'
import { NoSentRequest } from '../../errors.js'
import { MessageReply, Username, bearer, errorReplies } from '../schemas.js'

export const CancelRequestBody = Type.Object({ recipient_username: Username })

const cancelRequestRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/cancel_request', {
    schema: {
      summary: 'Withdraw your own pending chat request',
      description: 'The request goes away; its recipient gets a request_cancelled event (GET /sync, GET /ws). You may ask again later (within the request_chat rate limit).',
      tags: ['contacts'],
      security: bearer,
      body: CancelRequestBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 404, 413, 415, 429) }
    },
    onRequest: fastify.authenticate,
    // its own count, at request_chat's rate: every cancel undoes a request, and each event it
    // sends follows a chat_request that request_chat's limit already counted
    config: { rateLimit: fastify.routeRateLimit('requestChat') }
  }, async (request) => {
    const requested = await requireUser(fastify.db, request.body.recipient_username)
    const { cancelled, notified } = await cancelRequest(fastify.db, request.user, requested)
    if (!cancelled) throw new NoSentRequest(requested.username)
    await fastify.hub.publish(notified)
    return { message: `Chat request to ${requested.username} withdrawn.` }
  })
}

export default cancelRequestRoute
