import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listMessages } from '../../../db/admin.js'
import { isoTimes, parseUtcTime } from '../../../db/time.js'
import { InvalidTime } from '../../../errors.js'
import { Timestamp, adminBearer, errorReplies } from '../../schemas.js'
import { Username, auditView, filterUserId } from './schemas.js'

export const ListMessagesQuery = Type.Object({
  user: Type.Optional(Username),
  since: Type.Optional(Type.String({ maxLength: 40, description: 'a date (2026-11-27) or an ISO 8601 time' })),
  before_id: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'the next page: the last id seen' })),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50 })
})

export const MessageRow = Type.Object({
  id: Type.Integer(),
  sender: Type.String(),
  recipient: Type.String(),
  created_at: Timestamp,
  sender_blob_length: Type.Integer(),
  recipient_blob_length: Type.Integer()
})

const listMessagesRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/messages', {
    schema: {
      summary: 'Message metadata, newest first: ids, parties, times and blob sizes, never a blob',
      tags: ['admin'],
      security: adminBearer,
      querystring: ListMessagesQuery,
      response: { 200: Type.Object({ items: Type.Array(MessageRow) }), ...errorReplies(400, 401, 404, 429) }
    }
  }, async (request) => {
    const { user, since, before_id: beforeId, limit } = request.query
    const sinceMs = since === undefined ? undefined : parseUtcTime(since)
    if (since !== undefined && sinceMs === undefined) throw new InvalidTime('since')
    const userId = await filterUserId(fastify.db, user)
    const rows = await listMessages(fastify.db, { userId, since: sinceMs, beforeId }, limit)
    await auditView(fastify.db, request, 'view-messages', user ?? null)
    return { items: rows.map(isoTimes) }
  })
}

export default listMessagesRoute
