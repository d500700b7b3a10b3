import { sql, type Kysely, type RawBuilder } from 'kysely'
import { findRecipient, type Recipient } from './contacts.js'
import { isPostgres, isUniqueViolation } from './dialect.js'
import { appendEvents, appendedOf, messageEvents, storeMessageWithEvents, tellSendersInStatement, toldSenders, type Appended, type EventDetail, type ToldRow } from './events.js'
import { inGroupTransaction } from './perf/group-commit.js'
import { precompilePage } from './perf/pages.js'
import { precompile, precompileSql } from './perf/precompiled.js'
import type { Database, NewMessage } from './schema.js'
import { usernameKey, type User } from './users.js'

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
  /** The events the send appended (none for a duplicate), to publish with the wake-up. */
  appended: Appended
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
  const row: NewMessage = {
    sender_id: sender.id,
    recipient_id: recipient.id,
    user_lo: Math.min(sender.id, recipient.id),
    user_hi: Math.max(sender.id, recipient.id),
    sender_blob: message.sender_blob,
    recipient_blob: message.recipient_blob,
    client_msg_id: clientMsgId ?? null,
    created_at: now
  }
  const payload = { sender_username: sender.username, recipient_username: recipient.username }
  // each party's devices see the copy meant for that party
  const detail = (id: number): EventDetail => (_event, userId) => ({
    message: { id, sender_id: row.sender_id, recipient_id: row.recipient_id, created_at: now, client_msg_id: row.client_msg_id ?? null, encrypted_blob: userId === row.sender_id ? row.sender_blob : row.recipient_blob }
  })
  try {
    // PostgreSQL does it all in one statement (see events.ts); SQLite groups the commit
    if (isPostgres(db)) {
      const stored = await storeMessageWithEvents(db, row, payload)
      // one event row a device, its user's (the statement stores one even when both parties are one user)
      const events = messageEvents(row, stored.id, payload)
      const appended = appendedOf(stored.devices, userId => events.find(e => e.userId === userId), now, detail(stored.id))
      return { id: stored.id, created_at: stored.created_at, recipient_id: recipient.id, duplicate: false, appended }
    }
    return await inGroupTransaction(db, async trx => {
      const stored = await insertMessage.first(trx, row)
      if (stored === undefined) throw new Error('insert returned no row')
      const appended = await appendEvents(trx, messageEvents(row, stored.id, payload), now, detail(stored.id))
      return { ...stored, recipient_id: recipient.id, duplicate: false, appended }
    })
  } catch (error) {
    // a concurrent retry with the same client_msg_id stored it first
    const existing = clientMsgId !== undefined && isUniqueViolation(error) ? await findByClientMsgId(db, sender.id, clientMsgId) : undefined
    if (existing === undefined) throw error
    return existing
  }
}

// every send_message runs it on SQLite: built and compiled once
const insertMessage = precompile((db, m: NewMessage) => db.insertInto('messages')
  .values({
    sender_id: m.sender_id,
    recipient_id: m.recipient_id,
    user_lo: m.user_lo,
    user_hi: m.user_hi,
    sender_blob: m.sender_blob,
    recipient_blob: m.recipient_blob,
    client_msg_id: m.client_msg_id,
    created_at: m.created_at
  })
  .returning(['id', 'created_at']))

async function findByClientMsgId (db: Kysely<Database>, senderId: number, clientMsgId: string): Promise<SentMessage | undefined> {
  const row = await db.selectFrom('messages').select(['id', 'created_at', 'recipient_id'])
    .where('sender_id', '=', senderId).where('client_msg_id', '=', clientMsgId)
    .executeTakeFirst()
  return row === undefined ? undefined : { ...row, duplicate: true, appended: new Map() }
}

export interface AckOutcome {
  /** False when up_to_id is not a message the caller received: nothing was acknowledged. */
  found: boolean
  acknowledged: number
  /** Senders that were sent a `delivered` event. */
  notify: number[]
  appended: Appended
}

/**
 * The recipient (from its device `deviceKey`) acknowledges message upToId and every earlier
 * message it received: those with a smaller id, except any that reached that device's stream after upToId (on PostgreSQL ids
 * are handed out before commit, so a smaller id can commit, and be delivered, later).
 * Each sender whose messages were newly acknowledged gets one `delivered` event listing
 * them.
 */
export async function ackMessages (db: Kysely<Database>, recipient: User, deviceKey: number, upToId: number, now = Date.now()): Promise<AckOutcome> {
  if (isPostgres(db)) return await ackMessagesInOneStatement(db, recipient, deviceKey, upToId, now)
  // on SQLite grouped with the other writes of this turn of the event loop, as sends are
  return await inGroupTransaction(db, async trx => {
    const target = await ackTarget.first(trx, { upToId, recipientId: recipient.id, deviceKey })
    if (target === undefined) return { found: false, acknowledged: 0, notify: [], appended: new Map() }
    const { seq } = target
    const acked = seq === null
      ? await ackUpTo.rows(trx, { upToId, recipientId: recipient.id, now })
      : await ackUpToSeq.rows(trx, { upToId, recipientId: recipient.id, now, deviceKey, seq })
    const bySender = new Map<number, number[]>()
    for (const { id, sender_id: senderId } of acked) {
      const ids = bySender.get(senderId)
      if (ids === undefined) bySender.set(senderId, [id])
      else ids.push(id)
    }
    const appended = await appendEvents(trx, [...bySender].map(([senderId, ids]) => ({
      userId: senderId, type: 'delivered' as const, payload: { username: recipient.username, message_ids: ids.sort((a, b) => a - b) }
    })), now)
    return { found: true, acknowledged: acked.length, notify: [...bySender.keys()], appended }
  })
}

/**
 * PostgreSQL: ackMessages in one statement, that is one round trip instead of seven (the
 * pool's client costs about as much CPU per query as the query). The same rows as the
 * SQLite path: the messages marked, then each sender's devices locked in key order and
 * bumped as appendEvents does, one `delivered` event each (test/messages/ack-messages.test.ts
 * runs on both databases).
 */
async function ackMessagesInOneStatement (db: Kysely<Database>, recipient: User, deviceKey: number, upToId: number, now: number): Promise<AckOutcome> {
  const rows = await ackStatement.rows(db, { recipientId: recipient.id, username: recipient.username, deviceKey, upToId, now })
  const first = rows[0]
  if (first === undefined || first.found === 0) return { found: false, acknowledged: 0, notify: [], appended: new Map() }
  return { found: true, acknowledged: first.acknowledged, ...toldSenders(rows, ids => ({ username: recipient.username, message_ids: ids }), now) }
}

const ackStatement = precompileSql((p: { recipientId: number, username: string, deviceKey: number, upToId: number, now: number }) => sql<ToldRow & { found: number, acknowledged: number }>`
    with target as (
      select messages.id, events.seq from messages
      left join events on events.message_id = messages.id and events.device_id = ${p.deviceKey}
      where messages.id = ${p.upToId} and messages.recipient_id = ${p.recipientId}
    ), acked as (
      update messages set delivered_at = ${p.now}::bigint
      where recipient_id = ${p.recipientId} and id <= ${p.upToId} and delivered_at is null
        and exists (select 1 from target)
        and not exists (select 1 from target join events on events.device_id = ${p.deviceKey} and events.seq > target.seq
          where events.message_id = messages.id)
      returning id, sender_id
    ), senders as (
      select sender_id, array_agg(id order by id) as ids from acked group by sender_id
    ), ${tellSendersInStatement(
      sql`json_build_object('username', ${p.username}::text, 'message_ids', senders.ids)`,
      sql`(select count(*) from target)::int as found, (select count(*) from acked)::int as acknowledged`, p.now)}`)

// every ack runs them: built and compiled once
const ackTarget = precompile((db, p: { upToId: number, recipientId: number, deviceKey: number }) => db.selectFrom('messages')
  .leftJoin('events', join => join.onRef('events.message_id', '=', 'messages.id').on('events.device_id', '=', p.deviceKey))
  .select(['messages.id', 'events.seq'])
  .where('messages.id', '=', p.upToId).where('messages.recipient_id', '=', p.recipientId))
const ackUpTo = precompile((db, p: { upToId: number, recipientId: number, now: number }) => db.updateTable('messages')
  .set({ delivered_at: p.now })
  .where('recipient_id', '=', p.recipientId)
  .where('id', '<=', p.upToId)
  .where('delivered_at', 'is', null)
  .returning(['id', 'sender_id']))
// …except any message that reached the device's stream after upToId's event
const ackUpToSeq = precompile((db, p: { upToId: number, recipientId: number, now: number, deviceKey: number, seq: number }) => db.updateTable('messages')
  .set({ delivered_at: p.now })
  .where('recipient_id', '=', p.recipientId)
  .where('id', '<=', p.upToId)
  .where('delivered_at', 'is', null)
  .where(eb => eb.not(eb.exists(eb.selectFrom('events').select('events.seq')
    .where('events.device_id', '=', p.deviceKey)
    .where('events.seq', '>', p.seq)
    .whereRef('events.message_id', '=', 'messages.id'))))
  .returning(['id', 'sender_id']))

/**
 * The user named `otherName` as findRecipient finds them (undefined for no such user), and
 * the messages between `me` and them with id > sinceId, oldest first, at most `limit` (one
 * more is read to tell whether there are more). Each carries only the copy meant for `me`:
 * the sender's blob if `me` sent it, the recipient's otherwise. On PostgreSQL the page is
 * read by the other's name, sent with the lookup of the user: one round trip instead of
 * two. On SQLite, where there is no round trip to save, by the ids found, as before (the
 * read by name measured slower there: bench/results/ab-16.md).
 */
export async function readConversation (
  db: Kysely<Database>, me: number, otherName: string, sinceId: number, limit: number
): Promise<{ other: Recipient | undefined, messages: ConversationMessage[], hasMore: boolean }> {
  if (isPostgres(db)) {
    // no such user: no rows either (the page's subquery finds no id)
    const [other, { rows, hasMore }] = await Promise.all([
      findRecipient(db, me, otherName),
      conversationPageByName(db, { me, key: usernameKey(otherName), sinceId }, limit)
    ])
    return { other, messages: rows, hasMore }
  }
  const other = await findRecipient(db, me, otherName)
  if (other === undefined) return { other, messages: [], hasMore: false }
  const { rows, hasMore } = await conversationPage(db, { me, lo: Math.min(me, other.id), hi: Math.max(me, other.id), sinceId }, limit)
  return { other, messages: rows, hasMore }
}

// every get_messages reads a page: built and compiled once per page size
const conversationPage = precompilePage((db, p: { me: number, lo: number, hi: number, sinceId: number }, limit) =>
  pageOfConversation(db, p.me, p.sinceId, limit)
    .where('user_lo', '=', p.lo)
    .where('user_hi', '=', p.hi))

// the same on PostgreSQL by the other's name: their id is a subquery run once (-1, no
// one's, when there is no such user), so that the pair's equalities still lead the index
const conversationPageByName = precompilePage((db, p: { me: number, key: string, sinceId: number }, limit) =>
  pageOfConversation(db, p.me, p.sinceId, limit)
    .where(eb => {
      const other = eb.fn.coalesce(eb.selectFrom('users').select('users.id').where('users.username_key', '=', p.key), eb.lit(-1))
      return eb.and([
        eb('user_lo', '=', eb.fn<number>('least', [eb.val(p.me), other])),
        eb('user_hi', '=', eb.fn<number>('greatest', [eb.val(p.me), other]))
      ])
    }))

/** A page of messages after `sinceId`, each with `me`'s copy of the blob; the caller picks the pair. */
function pageOfConversation (db: Kysely<Database>, me: number, sinceId: number, limit: RawBuilder<number>) {
  return db.selectFrom('messages')
    .select(eb => [
      'id', 'sender_id', 'recipient_id', 'created_at',
      eb.case().when('sender_id', '=', me).then(eb.ref('sender_blob')).else(eb.ref('recipient_blob')).end().as('encrypted_blob')
    ])
    .where('id', '>', sinceId)
    .orderBy('id')
    .limit(limit)
}
