import { sql, type Kysely } from 'kysely'
import type { Database } from './schema.js'

export interface StoredMessage {
  id: number
  created_at: number
}

export interface ConversationMessage {
  id: number
  sender_id: number
  recipient_id: number
  created_at: number
  encrypted_blob: string
}

export async function insertMessage (
  db: Kysely<Database>,
  message: { sender_id: number, recipient_id: number, sender_blob: string, recipient_blob: string },
  now = Date.now()
): Promise<StoredMessage> {
  const { sender_id: s, recipient_id: r } = message
  return await db.insertInto('messages')
    .values({ ...message, user_lo: Math.min(s, r), user_hi: Math.max(s, r), created_at: now })
    .returning(['id', 'created_at'])
    .executeTakeFirstOrThrow()
}

// A bound LIMIT makes SQLite plan the statement again on every call (an empty poll: 14 µs
// against 8 µs with a literal here); a literal one does not, but each value is a
// statement of its own. So the limit is rounded up to one of a
// few literals and the extra rows are dropped.
const LIMITS = [2, 11, 21, 51, 101, 201, 501, 1001]

function readLimit (wanted: number): number {
  return LIMITS.find(limit => limit >= wanted) ?? wanted
}

/**
 * Messages between `me` and `other` with id > sinceId, oldest first, at most `limit`
 * (one more is read to tell whether there are more). Each carries only the copy meant
 * for `me`: the sender's blob if `me` sent it, the recipient's otherwise.
 */
export async function listConversation (
  db: Kysely<Database>, me: number, other: number, sinceId: number, limit: number
): Promise<{ messages: ConversationMessage[], hasMore: boolean }> {
  const rows = await db.selectFrom('messages')
    .select(eb => [
      'id', 'sender_id', 'recipient_id', 'created_at',
      eb.case().when('sender_id', '=', me).then(eb.ref('sender_blob')).else(eb.ref('recipient_blob')).end().as('encrypted_blob')
    ])
    .where('user_lo', '=', Math.min(me, other))
    .where('user_hi', '=', Math.max(me, other))
    .where('id', '>', sinceId)
    .orderBy('id')
    .limit(sql.lit(readLimit(limit + 1)))
    .execute()
  const hasMore = rows.length > limit
  if (hasMore) rows.length = limit
  return { messages: rows, hasMore }
}
