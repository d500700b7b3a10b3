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
      description: 'Ends a contact or pending request between you. Their chat requests still get 201 but are never shown to you; ' +
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
    const { endedContact } = await blockUser(fastify.db, request.user, other)
    // only the blocker's own devices hear of it (contact_removed); the blocked side, nothing
    if (endedContact) await fastify.hub.publish([request.user.id])
    return { message: `${other.username} blocked.` }
  })
}

export default blockUserRoute
