import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { requestChat } from '../../db/contacts.js'
import { requireUser } from '../../db/users.js'
import { AlreadyContacts, AlreadyRequested, BlockedByYou, SelfRequest } from '../../errors.js'
import { MessageReply, Username, bearer, errorReplies } from '../schemas.js'

export const RequestChatBody = Type.Object({ recipient_username: Username })

const requestChatRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/request_chat', {
    schema: {
      summary: 'Ask a user to become your contact',
      description: 'If they had already asked you, this accepts their request instead (201, and the message says so). ' +
        'A request to someone who blocked you gets the same 201 and is never shown to them; asking someone you blocked is a 409 (unblock them first).',
      tags: ['contacts'],
      security: bearer,
      body: RequestChatBody,
      response: { 201: MessageReply, ...errorReplies(400, 401, 404, 409, 413, 415, 429) }
    },
    onRequest: fastify.authenticate,
    config: { rateLimit: fastify.routeRateLimit('requestChat') }
  }, async (request, reply) => {
    const me = request.user
    const other = await requireUser(fastify.db, request.body.recipient_username)
    if (other.id === me.id) throw new SelfRequest()
    const { outcome, notified } = await requestChat(fastify.db, me, other)
    if (outcome === 'already_requested') throw new AlreadyRequested(other.username)
    if (outcome === 'already_contacts') throw new AlreadyContacts(other.username)
    if (outcome === 'blocked_by_you') throw new BlockedByYou(other.username)
    await fastify.hub.publish(notified)
    const message = outcome === 'accepted'
      ? `${other.username} had already asked you: you are now contacts.`
      : 'Chat request sent.'
    return await reply.status(201).send({ message })
  })
}

export default requestChatRoute
