import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { readConversation } from '../../db/messages.js'
import { iso } from '../../db/time.js'
import { afterSession } from '../../plugins/app/auth.js'
import { UserNotFound } from '../../errors.js'
import { Timestamp, Username, bearer, errorReplies } from '../schemas.js'

export const GetMessagesQuery = Type.Object({
  username: Username,
  since_id: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'return messages with a larger id' }),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
})

export const ConversationMessage = Type.Object({
  id: Type.Integer(),
  sender_id: Type.Integer(),
  recipient_id: Type.Integer(),
  sender_username: Type.String(),
  timestamp: Timestamp,
  encrypted_blob: Type.String({ description: "the caller's own copy: sender_blob if the caller sent it, recipient_blob otherwise" })
})

export const GetMessagesReply = Type.Object({
  messages: Type.Array(ConversationMessage),
  has_more: Type.Boolean({ description: 'more messages follow: ask again with since_id set to the last id' })
})

const getMessages: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/get_messages', {
    schema: {
      summary: 'Read your conversation with one user, oldest first, after since_id',
      description: 'Your contacts and yourself: unlimited. Any other name (an unknown one too) counts against RATE_LIMIT_LOOKUPS, different names per account, shared with get_key: then 429 with retry-after.',
      tags: ['messages'],
      security: bearer,
      querystring: GetMessagesQuery,
      response: { 200: GetMessagesReply, ...errorReplies(400, 401, 404, 429) }
    },
    onRequest: fastify.authenticateDeferred
  }, async (request, reply) => {
    const me = request.user
    const { username, since_id: sinceId, limit } = request.query
    // the page may be read with the user (see readConversation), but is answered only
    // once the lookup is within its limit
    const { other, messages, hasMore } = await afterSession(request, readConversation(fastify.db, me.id, username, sinceId, limit))
    await fastify.limitLookup(request, reply, username, other)
    if (other === undefined) throw new UserNotFound(username)
    return {
      messages: messages.map(m => ({
        id: m.id,
        sender_id: m.sender_id,
        recipient_id: m.recipient_id,
        sender_username: m.sender_id === me.id ? me.username : other.username,
        timestamp: iso(m.created_at),
        encrypted_blob: m.encrypted_blob
      })),
      has_more: hasMore
    }
  })
}

export default getMessages
