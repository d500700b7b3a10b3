import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { blockUser } from '../../db/contacts.js'
import { requireUser } from '../../db/users.js'
import { SelfBlock } from '../../errors.js'
import { MessageReply, Username, bearer, errorReplies } from '../schemas.js'

export const BlockUserBody = Type.Object({ username: Username })

const blockUserRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/block_user', {
    schema: {
      summary: 'Block a user (never revealed to them)',
      description: 'Ends a contact or pending request between you, as they would see it end without a block: a contact as by remove_contact ' +
        '(contact_removed to both), their request to you as by decline_chat (chat_declined to them), yours to them as by cancel_request ' +
        '(request_cancelled to them). Afterwards their chat requests get 201 as from anyone, but are never shown to you while the block holds; ' +
        'their messages get the same 403 as from any non-contact; your public key stays fetchable as for anyone. ' +
        'Blocking someone already blocked is a no-op (200).',
      tags: ['contacts'],
      security: bearer,
      body: BlockUserBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 404, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const other = await requireUser(fastify.db, request.body.username)
    if (other.id === request.user.id) throw new SelfBlock()
    const { notified } = await blockUser(fastify.db, request.user, other)
    await fastify.hub.publish(notified)
    return { message: `${other.username} blocked.` }
  })
}

export default blockUserRoute
