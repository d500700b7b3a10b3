import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ackMessages } from '../../db/messages.js'
import { MessageNotFound } from '../../errors.js'
import { bearer, errorReplies } from '../schemas.js'

export const AckMessagesBody = Type.Object({
  up_to_id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'the id of a message you received: it and every earlier message you received (smaller id, and before it in your event stream) are acknowledged' })
})

export const AckMessagesReply = Type.Object({
  message: Type.String(),
  acknowledged: Type.Integer({ description: 'how many messages this ack newly marked as delivered' })
})

const ackMessagesRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/ack_messages', {
    schema: {
      summary: 'Acknowledge the messages you received, up to an id: their senders get a `delivered` event',
      tags: ['messages'],
      security: bearer,
      body: AckMessagesBody,
      response: { 200: AckMessagesReply, ...errorReplies(400, 401, 404, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const { up_to_id: upToId } = request.body
    const outcome = await ackMessages(fastify.db, request.user, request.device.key, upToId)
    if (!outcome.found) throw new MessageNotFound(upToId)
    await fastify.hub.publish(outcome.notify)
    return { message: 'Messages acknowledged.', acknowledged: outcome.acknowledged }
  })
}

export default ackMessagesRoute
