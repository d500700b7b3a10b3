import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { acceptChat } from '../../db/contacts.js'
import { requireUser } from '../../db/users.js'
import { NoPendingRequest } from '../../errors.js'
import { MessageReply, Username, bearer, errorReplies } from '../schemas.js'

export const AcceptChatBody = Type.Object({ requester_username: Username })

const acceptChatRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/accept_chat', {
    schema: {
      summary: 'Accept a pending chat request',
      tags: ['contacts'],
      security: bearer,
      body: AcceptChatBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 404, 413, 415, 429) }
    },
    onRequest: fastify.authenticate,
    config: { rateLimit: fastify.routeRateLimit('acceptChat') }
  }, async (request) => {
    const requester = await requireUser(fastify.db, request.body.requester_username)
    if (!await acceptChat(fastify.db, requester, request.user)) throw new NoPendingRequest(requester.username)
    await fastify.hub.publish([requester.id, request.user.id])
    return { message: `Chat request from ${requester.username} accepted.` }
  })
}

export default acceptChatRoute
