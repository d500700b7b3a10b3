import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ackEnvelopes } from '../../db/envelopes.js'
import { ackMessages } from '../../db/messages.js'
import { MessageNotFound, ValidationFailed } from '../../errors.js'
import { bearer, errorReplies } from '../schemas.js'

export const AckMessagesBody = Type.Object({
  up_to_id: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'the id of a message you received (send_message): it and every earlier message you received (smaller id, and before it in your event stream) are acknowledged' })),
  envelope_ids: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), {
    minItems: 1,
    maxItems: 1000,
    description: 'ids of envelopes this device received (PUT /v1/messages): each is deleted from the server; ids it does not have (already acknowledged) are ignored'
  }))
}, { description: 'up_to_id, envelope_ids, or both' })

export const AckMessagesReply = Type.Object({
  message: Type.String(),
  acknowledged: Type.Integer({ description: 'how many messages this ack newly marked as delivered, plus how many envelopes it deleted' })
})

const ackMessagesRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/ack_messages', {
    schema: {
      summary: 'Acknowledge the messages you received, up to an id, and envelopes by id: their senders get a `delivered` event',
      tags: ['messages'],
      security: bearer,
      body: AckMessagesBody,
      response: { 200: AckMessagesReply, ...errorReplies(400, 401, 404, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const { up_to_id: upToId, envelope_ids: envelopeIds } = request.body
    if (upToId === undefined && envelopeIds === undefined) throw new ValidationFailed('body must have up_to_id or envelope_ids')
    let acknowledged = 0
    if (upToId !== undefined) {
      const outcome = await ackMessages(fastify.db, request.user, request.device.key, upToId)
      if (!outcome.found) throw new MessageNotFound(upToId)
      await fastify.hub.publish(outcome.notify, outcome.appended)
      acknowledged += outcome.acknowledged
    }
    if (envelopeIds !== undefined) {
      const outcome = await ackEnvelopes(fastify.db, request.user, request.device, envelopeIds)
      await fastify.hub.publish(outcome.notify, outcome.appended)
      acknowledged += outcome.acknowledged
    }
    return { message: 'Messages acknowledged.', acknowledged }
  })
}

export default ackMessagesRoute
