import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { declineChat } from '../../db/contacts.js'
import { requireUser } from '../../db/users.js'
import { NoPendingRequest } from '../../errors.js'
import { MessageReply, Username, bearer, errorReplies } from '../schemas.js'

export const DeclineChatBody = Type.Object({ requester_username: Username })

const declineChatRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/decline_chat', {
    schema: {
      summary: 'Decline a pending chat request',
      description: 'The request goes away; the requester gets a chat_declined event (GET /sync, GET /ws), and may ask again later (within the request_chat rate limit).',
      tags: ['contacts'],
      security: bearer,
      body: DeclineChatBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 404, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const requester = await requireUser(fastify.db, request.body.requester_username)
    if (!await declineChat(fastify.db, requester, request.user)) throw new NoPendingRequest(requester.username)
    await fastify.hub.publish([requester.id])
    return { message: `Chat request from ${requester.username} declined.` }
  })
}

export default declineChatRoute
