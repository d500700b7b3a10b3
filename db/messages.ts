import { PostgresAdapter, sql, type Kysely } from 'kysely'
import { isUniqueViolation } from './errors.js'
import { appendEvents } from './events.js'
import { inGroupTransaction } from './group-commit.js'
import { readLimit } from './limits.js'
import { precompile, precompileByLimit } from './precompiled.js'
import type { Database } from './schema.js'
import type { User } from './users.js'

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

export interface SentMessage extends StoredMessage {
  recipient_id: number
  /** True when client_msg_id matched a message stored before: nothing new was stored. */
  duplicate: boolean
}

/**
 * Stores a message and, in the same transaction, a `message` event for each party.
 * With a client_msg_id already used by this sender, returns that stored message instead.
 */
export async function storeMessage (
  db: Kysely<Database>,
  message: { sender: User, recipient: User, sender_blob: string, recipient_blob: string, client_msg_id?: string | undefined },
  now = Date.now()
): Promise<SentMessage> {
  const { sender, recipient, client_msg_id: clientMsgId } = message
  if (clientMsgId !== undefined) {
    const existing = await findByClientMsgId(db, sender.id, clientMsgId)
    if (existing !== undefined) return existing
  }
  try {
    if (db.getExecutor().adapter instanceof PostgresAdapter) {
      return { ...await storeInOneStatement(db, message, now), recipient_id: recipient.id, duplicate: false }
    }
    return await inGroupTransaction(db, async trx => {
      const stored = await insertMessage.first(trx, sender.id, recipient.id, Math.min(sender.id, recipient.id), Math.max(sender.id, recipient.id),
        message.sender_blob, message.recipient_blob, clientMsgId ?? null, now)
      if (stored === undefined) throw new Error('insert returned no row')
      const payload = { sender_username: sender.username, recipient_username: recipient.username }
      await appendEvents(trx, [
        { userId: recipient.id, type: 'message', payload, messageId: stored.id },
        { userId: sender.id, type: 'message', payload, messageId: stored.id }
      ], now)
      return { ...stored, recipient_id: recipient.id, duplicate: false }
    })
  } catch (error) {
    // a concurrent retry with the same client_msg_id stored it first
    const existing = clientMsgId !== undefined && isUniqueViolation(error) ? await findByClientMsgId(db, sender.id, clientMsgId) : undefined
    if (existing === undefined) throw error
    return existing
  }
}

/**
 * PostgreSQL: the message, both counters and both events in one statement, that is one
 * transaction and one round trip instead of six. The two users' rows are locked in id
 * order first, as appendEvents does, so that concurrent sends cannot deadlock; the
 * counters then follow commit order as every user's stream must.
 */
async function storeInOneStatement (
  db: Kysely<Database>, message: { sender: User, recipient: User, sender_blob: string, recipient_blob: string, client_msg_id?: string | undefined }, now: number
): Promise<StoredMessage> {
  const { sender, recipient } = message
  const payload = JSON.stringify({ sender_username: sender.username, recipient_username: recipient.username })
  const { rows } = await sql<StoredMessage>`
    with locked as (
      select id from users where id in (${sender.id}, ${recipient.id}) order by id for update
    ), bumped as (
      update users set event_seq = users.event_seq + 1 from locked where users.id = locked.id
      returning users.id, users.event_seq
    ), stored as (
      insert into messages (sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, client_msg_id, created_at)
      values (${sender.id}, ${recipient.id}, ${Math.min(sender.id, recipient.id)}, ${Math.max(sender.id, recipient.id)},
        ${message.sender_blob}, ${message.recipient_blob}, ${message.client_msg_id ?? null}, ${now})
      returning id, created_at
    ), appended as (
      insert into events (user_id, seq, type, payload, message_id, created_at)
      select bumped.id, bumped.event_seq, 'message', ${payload}::text, stored.id, ${now}::bigint from bumped, stored
    )
    select id, created_at from stored`.execute(db)
  const stored = rows[0]
  if (stored === undefined) throw new Error('insert returned no row')
  return stored
}

// every send_message runs it: built and compiled once
const insertMessage = precompile(8, (db, senderId: number, recipientId: number, lo: number, hi: number,
  senderBlob: string, recipientBlob: string, clientMsgId: string | null, createdAt: number) => db.insertInto('messages')
  .values({
    sender_id: senderId,
    recipient_id: recipientId,
    user_lo: lo,
    user_hi: hi,
    sender_blob: senderBlob,
    recipient_blob: recipientBlob,
    client_msg_id: clientMsgId,
    created_at: createdAt
  })
  .returning(['id', 'created_at']))

async function findByClientMsgId (db: Kysely<Database>, senderId: number, clientMsgId: string): Promise<SentMessage | undefined> {
  const row = await db.selectFrom('messages').select(['id', 'created_at', 'recipient_id'])
    .where('sender_id', '=', senderId).where('client_msg_id', '=', clientMsgId)
    .executeTakeFirst()
  return row === undefined ? undefined : { ...row, duplicate: true }
}

export interface AckOutcome {
  /** False when up_to_id is not a message the caller received: nothing was acknowledged. */
  found: boolean
  acknowledged: number
  /** Senders that were sent a `delivered` event. */
  notify: number[]
}

/**
 * The recipient acknowledges message upToId and every earlier message it received: those
 * with a smaller id, except any that reached its stream after upToId (on PostgreSQL ids
 * are handed out before commit, so a smaller id can commit, and be delivered, later).
 * Each sender whose messages were newly acknowledged gets one `delivered` event listing
 * them.
 */
export async function ackMessages (db: Kysely<Database>, recipient: User, upToId: number, now = Date.now()): Promise<AckOutcome> {
  return await db.transaction().execute(async trx => {
    const target = await trx.selectFrom('messages')
      .leftJoin('events', join => join.onRef('events.message_id', '=', 'messages.id').on('events.user_id', '=', recipient.id))
      .select(['messages.id', 'events.seq'])
      .where('messages.id', '=', upToId).where('messages.recipient_id', '=', recipient.id)
      .executeTakeFirst()
    if (target === undefined) return { found: false, acknowledged: 0, notify: [] }
    const { seq } = target
    const acked = await trx.updateTable('messages')
      .set({ delivered_at: now })
      .where('recipient_id', '=', recipient.id)
      .where('id', '<=', upToId)
      .where('delivered_at', 'is', null)
      .$if(seq !== null, qb => qb.where(eb => eb.not(eb.exists(eb.selectFrom('events').select('events.seq')
        .where('events.user_id', '=', recipient.id)
        .where('events.seq', '>', seq ?? 0)
        .whereRef('events.message_id', '=', 'messages.id')))))
      .returning(['id', 'sender_id'])
      .execute()
    const bySender = new Map<number, number[]>()
    for (const { id, sender_id: senderId } of acked) bySender.set(senderId, [...bySender.get(senderId) ?? [], id])
    await appendEvents(trx, [...bySender].map(([senderId, ids]) => ({
      userId: senderId, type: 'delivered' as const, payload: { username: recipient.username, message_ids: ids.sort((a, b) => a - b) }
    })), now)
    return { found: true, acknowledged: acked.length, notify: [...bySender.keys()] }
  })
}

/**
 * Messages between `me` and `other` with id > sinceId, oldest first, at most `limit`
 * (one more is read to tell whether there are more). Each carries only the copy meant
 * for `me`: the sender's blob if `me` sent it, the recipient's otherwise.
 */
export async function listConversation (
  db: Kysely<Database>, me: number, other: number, sinceId: number, limit: number
): Promise<{ messages: ConversationMessage[], hasMore: boolean }> {
  const rows = await conversationPage(readLimit(limit + 1)).rows(db, me, Math.min(me, other), Math.max(me, other), sinceId)
  const hasMore = rows.length > limit
  if (hasMore) rows.length = limit
  return { messages: rows, hasMore }
}

// every get_messages reads a page: built and compiled once per literal limit
const conversationPage = precompileByLimit(4, limit => (db, me: number, lo: number, hi: number, sinceId: number) => db.selectFrom('messages')
  .select(eb => [
    'id', 'sender_id', 'recipient_id', 'created_at',
    eb.case().when('sender_id', '=', me).then(eb.ref('sender_blob')).else(eb.ref('recipient_blob')).end().as('encrypted_blob')
  ])
  .where('user_lo', '=', lo)
  .where('user_hi', '=', hi)
  .where('id', '>', sinceId)
  .orderBy('id')
  .limit(sql.lit(limit)))
