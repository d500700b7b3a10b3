import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { areContacts } from '../../db/contacts.js'
import { insertMessage } from '../../db/messages.js'
import { findUserByName } from '../../db/users.js'
import { NotAContact, UserNotFound } from '../errors.js'
import { Timestamp, Username, bearer, errorReplies, iso } from '../schemas.js'

export const SendMessageReply = Type.Object({
  message: Type.String(),
  id: Type.Integer({ description: 'the stored message id; poll get_messages with since_id from here' }),
  timestamp: Timestamp
})

const sendMessage: FastifyPluginAsyncTypebox = async (fastify) => {
  const Blob = Type.String({ minLength: 1, maxLength: fastify.config.maxBlobLength, description: 'ciphertext, opaque to the server' })
  const SendMessageBody = Type.Object({
    recipient_username: Username,
    sender_blob: Type.String({ ...Blob, description: "the sender's copy, encrypted for the sender" }),
    recipient_blob: Type.String({ ...Blob, description: "the recipient's copy, encrypted for the recipient" })
  })
  fastify.post('/send_message', {
    schema: {
      summary: 'Send an encrypted message to an accepted contact',
      tags: ['messages'],
      security: bearer,
      body: SendMessageBody,
      response: { 201: SendMessageReply, ...errorReplies(400, 401, 403, 404, 413, 415, 429) }
    },
    onRequest: fastify.authenticate,
    config: { rateLimit: fastify.routeRateLimit('sendMessage') }
  }, async (request, reply) => {
    const { recipient_username: name, sender_blob: senderBlob, recipient_blob: recipientBlob } = request.body
    const recipient = await findUserByName(fastify.db, name)
    if (recipient === undefined) throw new UserNotFound(name)
    if (!await areContacts(fastify.db, request.user.id, recipient.id)) throw new NotAContact(recipient.username)
    const stored = await insertMessage(fastify.db, {
      sender_id: request.user.id, recipient_id: recipient.id, sender_blob: senderBlob, recipient_blob: recipientBlob
    })
    return await reply.status(201).send({ message: 'Message sent.', id: stored.id, timestamp: iso(stored.created_at) })
  })
}

export default sendMessage
