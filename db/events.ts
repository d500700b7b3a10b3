import { sql, type Insertable, type Kysely, type Transaction } from 'kysely'
import { isPostgres } from './dialect.js'
import { precompilePage } from './perf/pages.js'
import { precompile } from './perf/precompiled.js'
import type { Database, EventsTable, NewMessage } from './schema.js'

// Each user's event stream: what happened to them, numbered 1, 2, 3... in commit order.
// Other modules append events inside the transaction that makes the change, and publish
// a wake-up (the hub) only after that transaction commits.

/** The stored fields of each event type (message events also point at their message row). */
export interface EventPayloads {
  message: { sender_username: string, recipient_username: string }
  chat_request: { requester_username: string }
  chat_accepted: { username: string }
  chat_declined: { username: string }
  request_cancelled: { username: string }
  contact_removed: { username: string }
  key_changed: { username: string }
  delivered: { username: string, message_ids: number[] }
  expired_undelivered: { username: string, message_ids: number[] }
  /** Deliberately empty: stored after the erasure, it must not name the erased user (db/erasure.ts). */
  contact_deleted: Record<string, never>
}
export type EventType = keyof EventPayloads

export type NewEvent = {
  [T in EventType]: { userId: number, type: T, payload: EventPayloads[T], messageId?: number }
}[EventType]

export type StoredEvent = {
  [T in EventType]: {
    seq: number
    type: T
    payload: EventPayloads[T]
    created_at: number
    /** The reader's own copy of the message, or null (not a message event, or the message is gone). */
    message: EventMessage | null
  }
}[EventType]

export interface EventMessage {
  id: number
  sender_id: number
  recipient_id: number
  created_at: number
  client_msg_id: string | null
  encrypted_blob: string
}

/**
 * Appends events inside the caller's transaction and returns their seqs (undefined for a
 * user that no longer exists). Counters are bumped in ascending user id, so two
 * transactions touching the same users lock them in the same order and cannot deadlock.
 */
export async function appendEvents (trx: Transaction<Database>, events: NewEvent[], now = Date.now()): Promise<Array<number | undefined>> {
  if (events.length === 0) return []
  const seqOf = await bumpCounters(trx, events.map(event => event.userId))
  const seqs = events.map(event => seqOf.get(event.userId)?.shift())
  const rows = events.flatMap((event, index) => {
    const seq = seqs[index]
    return seq === undefined
      ? []
      : [{ user_id: event.userId, seq, type: event.type, payload: JSON.stringify(event.payload), message_id: event.messageId ?? null, created_at: now }]
  })
  // one multi-row insert: a message's two events cost one statement, not two
  if (rows.length === 1) await insertEvent.rows(trx, rows[0] as EventRow)
  else if (rows.length === 2) await insertTwoEvents.rows(trx, { first: rows[0] as EventRow, second: rows[1] as EventRow })
  else if (rows.length > 0) await trx.insertInto('events').values(rows).execute()
  return seqs
}

/** The `message` event each party of a stored message gets: the recipient's, then the sender's. */
export function messageEvents (message: Pick<NewMessage, 'sender_id' | 'recipient_id'>, messageId: number, payload: EventPayloads['message']): NewEvent[] {
  return [
    { userId: message.recipient_id, type: 'message', payload, messageId },
    { userId: message.sender_id, type: 'message', payload, messageId }
  ]
}

/**
 * PostgreSQL: stores the message and appends its messageEvents in one statement, that is
 * one transaction and one round trip instead of six; the same rows as inserting the
 * message and calling appendEvents (test/db/message-events.test.ts holds them to it). The
 * two users' rows are locked in id order first, as appendEvents does, so that concurrent
 * sends cannot deadlock; the counters then follow commit order as every user's stream must.
 */
export async function storeMessageWithEvents (
  db: Kysely<Database>, message: NewMessage, payload: EventPayloads['message']
): Promise<{ id: number, created_at: number }> {
  const { rows } = await sql<{ id: number, created_at: number }>`
    with locked as (
      select id from users where id in (${message.sender_id}, ${message.recipient_id}) order by id for update
    ), bumped as (
      update users set event_seq = users.event_seq + 1 from locked where users.id = locked.id
      returning users.id, users.event_seq
    ), stored as (
      insert into messages (sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, client_msg_id, created_at)
      values (${message.sender_id}, ${message.recipient_id}, ${message.user_lo}, ${message.user_hi},
        ${message.sender_blob}, ${message.recipient_blob}, ${message.client_msg_id}, ${message.created_at})
      returning id, created_at
    ), appended as (
      insert into events (user_id, seq, type, payload, message_id, created_at)
      select bumped.id, bumped.event_seq, 'message', ${JSON.stringify(payload)}::text, stored.id, ${message.created_at}::bigint from bumped, stored
    )
    select id, created_at from stored`.execute(db)
  const stored = rows[0]
  if (stored === undefined) throw new Error('insert returned no row')
  return stored
}

type EventRow = Insertable<EventsTable>

// each column read from the event's marker (see perf/precompiled.ts)
const columns = (e: EventRow): EventRow =>
  ({ user_id: e.user_id, seq: e.seq, type: e.type, payload: e.payload, message_id: e.message_id, created_at: e.created_at })

// every message and most changes insert one or two events: those shapes are compiled once
const insertEvent = precompile((db, e: EventRow) => db.insertInto('events').values(columns(e)))
const insertTwoEvents = precompile((db, p: { first: EventRow, second: EventRow }) =>
  db.insertInto('events').values([columns(p.first), columns(p.second)]))

// the counters of one user, or of two distinct users in one statement (SQLite only)
const bumpOne = precompile((db, p: { userId: number }) => db.updateTable('users')
  .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
  .where('id', '=', p.userId)
  .returning(['id', 'event_seq']))
const bumpTwo = precompile((db, p: { a: number, b: number }) => db.updateTable('users')
  .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
  .where('id', 'in', [p.a, p.b])
  .returning(['id', 'event_seq']))

/**
 * Bumps each user's counter once per occurrence in `userIds`; the new seqs of each user, in
 * ascending order (none for a user that no longer exists). SQLite has a single writer, so
 * when the users are distinct one UPDATE bumps them all; otherwise (PostgreSQL, where two
 * transactions must lock the same users in the same order) one UPDATE per event, in
 * ascending user id.
 */
async function bumpCounters (trx: Transaction<Database>, userIds: number[]): Promise<Map<number, number[]>> {
  const seqOf = new Map<number, number[]>()
  const distinct = [...new Set(userIds)].sort((a, b) => a - b)
  if (distinct.length === userIds.length && !isPostgres(trx)) {
    const [a, b] = distinct as [number, number | undefined]
    const rows = distinct.length === 1
      ? await bumpOne.rows(trx, { userId: a })
      : distinct.length === 2 && b !== undefined
        ? await bumpTwo.rows(trx, { a, b })
        : await trx.updateTable('users')
          .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
          .where('id', 'in', distinct)
          .returning(['id', 'event_seq'])
          .execute()
    for (const row of rows) seqOf.set(row.id, [row.event_seq])
    return seqOf
  }
  for (const userId of [...userIds].sort((a, b) => a - b)) {
    const row = await bumpOne.first(trx, { userId })
    if (row === undefined) continue
    const seqs = seqOf.get(userId)
    if (seqs === undefined) seqOf.set(userId, [row.event_seq])
    else seqs.push(row.event_seq)
  }
  return seqOf
}

/** The user's latest seq and the highest seq retention has deleted; undefined for no such user. */
export async function streamBounds (db: Kysely<Database>, userId: number): Promise<{ seq: number, floor: number } | undefined> {
  const row = await bounds.first(db, { userId })
  return row === undefined ? undefined : { seq: row.event_seq, floor: row.event_floor }
}

const bounds = precompile((db, p: { userId: number }) => db.selectFrom('users').select(['event_seq', 'event_floor']).where('id', '=', p.userId))

/** The user's events after `afterSeq`, oldest first, at most `limit` (one more is read to tell whether there are more). */
export async function readEvents (
  db: Kysely<Database>, userId: number, afterSeq: number, limit: number
): Promise<{ events: StoredEvent[], hasMore: boolean }> {
  const { rows, hasMore } = await eventPage(db, { userId, afterSeq }, limit)
  return {
    hasMore,
    events: rows.map(row => ({
      seq: row.seq,
      type: row.type,
      payload: JSON.parse(row.payload),
      created_at: row.created_at,
      message: row.m_id === null || row.sender_id === null || row.recipient_id === null || row.m_created_at === null || row.encrypted_blob === null
        ? null
        : { id: row.m_id, sender_id: row.sender_id, recipient_id: row.recipient_id, created_at: row.m_created_at, client_msg_id: row.client_msg_id, encrypted_blob: row.encrypted_blob }
    }) as StoredEvent)
  }
}

// every sync and every socket wake-up reads a page: built and compiled once per page size
const eventPage = precompilePage((db, p: { userId: number, afterSeq: number }, limit) => db.selectFrom('events')
  .leftJoin('messages', 'messages.id', 'events.message_id')
  .select(eb => [
    'events.seq', 'events.type', 'events.payload', 'events.created_at',
    'messages.id as m_id', 'messages.sender_id', 'messages.recipient_id', 'messages.created_at as m_created_at', 'messages.client_msg_id',
    eb.case().when('messages.sender_id', '=', p.userId).then(eb.ref('messages.sender_blob')).else(eb.ref('messages.recipient_blob')).end().as('encrypted_blob')
  ])
  .where('events.user_id', '=', p.userId)
  .where('events.seq', '>', p.afterSeq)
  .orderBy('events.seq')
  .limit(limit))

/**
 * Deletes events created before `cutoff`, first moving each affected user's floor up to
 * the highest seq being deleted, so that a cursor from before then is known to be stale.
 */
export async function purgeEvents (db: Kysely<Database>, cutoff: number): Promise<number> {
  return await db.transaction().execute(async trx => {
    await trx.updateTable('users')
      .set(eb => ({
        event_floor: eb.selectFrom('events').select(e => e.fn.max('events.seq').as('m'))
          .whereRef('events.user_id', '=', 'users.id').where('events.created_at', '<', cutoff)
      }))
      .where(eb => eb.exists(eb.selectFrom('events').select('events.seq').whereRef('events.user_id', '=', 'users.id').where('events.created_at', '<', cutoff)))
      .execute()
    // By age, on its index: an event a few ms younger than the cutoff but below the new
    // floor (seqs follow commit order, times follow the clock) is out of every cursor's
    // reach already, and goes at the next sweep.
    const result = await trx.deleteFrom('events').where('created_at', '<', cutoff).executeTakeFirst()
    return Number(result.numDeletedRows)
  })
}
