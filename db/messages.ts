import type { Kysely } from 'kysely'
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
    .limit(limit + 1)
    .execute()
  const hasMore = rows.length > limit
  if (hasMore) rows.pop()
  return { messages: rows, hasMore }
}
