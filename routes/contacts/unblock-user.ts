import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { unblockUser } from '../../db/contacts.js'
import { requireUser } from '../../db/users.js'
import { NotBlocked } from '../../errors.js'
import { MessageReply, Username, bearer, errorReplies } from '../schemas.js'

export const UnblockUserBody = Type.Object({ username: Username })

const unblockUserRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/unblock_user', {
    schema: {
      summary: 'Lift a block',
      description: 'A chat request they sent while blocked, which they believe is waiting for your answer, now is: it shows in ' +
        'get_chat_requests (and comes as a chat_request event) for you to accept or decline. A contact ended by the block is not restored.',
      tags: ['contacts'],
      security: bearer,
      body: UnblockUserBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 404, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const other = await requireUser(fastify.db, request.body.username)
    const { unblocked, notified } = await unblockUser(fastify.db, request.user, other.id)
    if (!unblocked) throw new NotBlocked(other.username)
    await fastify.hub.publish(notified)
    return { message: `${other.username} unblocked.` }
  })
}

export default unblockUserRoute
