import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findRecipient } from '../../db/contacts.js'
import { storeMessage } from '../../db/messages.js'
import { iso } from '../../db/time.js'
import { ClientMsgIdReused, NotAContact, UserNotFound } from '../../errors.js'
import { afterSession } from '../../plugins/app/auth.js'
import { ClientMsgId, Timestamp, Username, bearer, blobSchema, errorReplies } from '../schemas.js'

export const SendMessageReply = Type.Object({
  message: Type.String(),
  id: Type.Integer({ description: 'the stored message id; poll get_messages with since_id from here' }),
  timestamp: Timestamp
})

const sendMessage: FastifyPluginAsyncTypebox = async (fastify) => {
  const Blob = blobSchema(fastify.config.maxBlobLength)
  const SendMessageBody = Type.Object({
    recipient_username: Username,
    sender_blob: Type.String({ ...Blob, description: "the sender's copy, encrypted for the sender" }),
    recipient_blob: Type.String({ ...Blob, description: "the recipient's copy, encrypted for the recipient" }),
    client_msg_id: Type.Optional(ClientMsgId)
  })
  fastify.post('/send_message', {
    schema: {
      summary: 'Send an encrypted message to an accepted contact',
      description: 'Limited per IP (RATE_LIMIT_SEND_MESSAGE), per sending account (RATE_LIMIT_SEND_MESSAGE_SENDER) and per sender to one recipient (RATE_LIMIT_SEND_MESSAGE_PAIR). ' +
        'A user who is not your contact, or who blocked you, gets the same 403.',
      tags: ['messages'],
      security: bearer,
      body: SendMessageBody,
      response: { 201: SendMessageReply, ...errorReplies(400, 401, 403, 404, 409, 413, 415, 429) }
    },
    // The recipient is read together with the session's lookup (on PostgreSQL one round trip
    // instead of two); the limits count, and the message is stored, only once the session is
    // known to be valid (authenticateDeferred): a token that no longer works gets its 401,
    // spends nothing of the account's limits and stores nothing.
    onRequest: fastify.authenticateDeferred,
    config: { rateLimit: fastify.routeRateLimit('sendMessage') }
  }, async (request, reply) => {
    const { recipient_username: name, sender_blob: senderBlob, recipient_blob: recipientBlob } = request.body
    const recipient = await afterSession(request, findRecipient(fastify.db, request.user.id, name))
    await fastify.limitSendMessage(request, reply, name)
    if (recipient === undefined) throw new UserNotFound(name)
    if (!recipient.contact) throw new NotAContact(recipient.username)
    const stored = await storeMessage(fastify.db, {
      sender: request.user, recipient: { id: recipient.id, username: recipient.username }, sender_blob: senderBlob, recipient_blob: recipientBlob, client_msg_id: request.body.client_msg_id
    })
    if (stored.duplicate && stored.recipient_id !== recipient.id) throw new ClientMsgIdReused()
    if (!stored.duplicate) await fastify.hub.publish([recipient.id, request.user.id], stored.appended)
    return await reply.status(201).send({ message: 'Message sent.', id: stored.id, timestamp: iso(stored.created_at) })
  })
}

export default sendMessage
