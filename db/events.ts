import { PostgresAdapter, sql, type Insertable, type Kysely, type Transaction } from 'kysely'
import { readLimit } from './limits.js'
import { precompile, precompileByLimit } from './precompiled.js'
import type { Database, EventsTable } from './schema.js'

// Each user's event stream: what happened to them, numbered 1, 2, 3... in commit order.
// Other modules append events inside the transaction that makes the change, and publish
// a wake-up (the hub) only after that transaction commits.

/** The stored fields of each event type (message events also point at their message row). */
export interface EventPayloads {
  message: { sender_username: string, recipient_username: string }
  chat_request: { requester_username: string }
  chat_accepted: { username: string }
  chat_declined: { username: string }
  contact_removed: { username: string }
  key_changed: { username: string }
  delivered: { username: string, message_ids: number[] }
  expired_undelivered: { username: string, message_ids: number[] }
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
  if (rows.length === 1 || rows.length === 2) await insertEvents[rows.length - 1]?.rows(trx, ...rows.flatMap(eventValues))
  else if (rows.length > 0) await trx.insertInto('events').values(rows).execute()
  return seqs
}

type EventRow = Insertable<EventsTable>
const EVENT_COLUMNS = 6

function eventValues (row: EventRow): unknown[] {
  return [row.user_id, row.seq, row.type, row.payload, row.message_id, row.created_at]
}

function eventRow (values: unknown[], index: number): EventRow {
  const [userId, seq, type, payload, messageId, createdAt] = values.slice(index * EVENT_COLUMNS, (index + 1) * EVENT_COLUMNS)
  return { user_id: userId as number, seq: seq as number, type: type as string, payload: payload as string, message_id: messageId as number | null, created_at: createdAt as number }
}

// every message and most changes insert one or two events: those shapes are compiled once
const insertEvents = [1, 2].map(count => precompile(count * EVENT_COLUMNS, (db, ...values: unknown[]) =>
  db.insertInto('events').values(Array.from({ length: count }, (_, index) => eventRow(values, index)))))

// the counters of one user, or of two distinct users in one statement (SQLite only)
const bumpOne = precompile(1, (db, userId: number) => db.updateTable('users')
  .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
  .where('id', '=', userId)
  .returning(['id', 'event_seq']))
const bumpTwo = precompile(2, (db, a: number, b: number) => db.updateTable('users')
  .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
  .where('id', 'in', [a, b])
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
  if (distinct.length === userIds.length && !(trx.getExecutor().adapter instanceof PostgresAdapter)) {
    const [a, b] = distinct as [number, number | undefined]
    const rows = distinct.length === 1
      ? await bumpOne.rows(trx, a)
      : distinct.length === 2 && b !== undefined
        ? await bumpTwo.rows(trx, a, b)
        : await trx.updateTable('users')
          .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
          .where('id', 'in', distinct)
          .returning(['id', 'event_seq'])
          .execute()
    for (const row of rows) seqOf.set(row.id, [row.event_seq])
    return seqOf
  }
  for (const userId of [...userIds].sort((a, b) => a - b)) {
    const row = await bumpOne.first(trx, userId)
    if (row === undefined) continue
    const seqs = seqOf.get(userId)
    if (seqs === undefined) seqOf.set(userId, [row.event_seq])
    else seqs.push(row.event_seq)
  }
  return seqOf
}

/** Appends one event to one user's stream, inside the caller's transaction. */
export async function appendEvent<T extends EventType> (
  trx: Transaction<Database>, userId: number, type: T, payload: EventPayloads[T], messageId?: number, now = Date.now()
): Promise<number | undefined> {
  const [seq] = await appendEvents(trx, [{ userId, type, payload, messageId } as NewEvent], now)
  return seq
}

/** The user's latest seq and the highest seq retention has deleted; undefined for no such user. */
export async function streamBounds (db: Kysely<Database>, userId: number): Promise<{ seq: number, floor: number } | undefined> {
  const row = await bounds.first(db, userId)
  return row === undefined ? undefined : { seq: row.event_seq, floor: row.event_floor }
}

const bounds = precompile(1, (db, userId: number) => db.selectFrom('users').select(['event_seq', 'event_floor']).where('id', '=', userId))

/** The user's events after `afterSeq`, oldest first, at most `limit` (one more is read to tell whether there are more). */
export async function readEvents (
  db: Kysely<Database>, userId: number, afterSeq: number, limit: number
): Promise<{ events: StoredEvent[], hasMore: boolean }> {
  const rows = await eventPage(readLimit(limit + 1)).rows(db, userId, afterSeq)
  const hasMore = rows.length > limit
  if (hasMore) rows.length = limit
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

// every sync and every socket wake-up reads a page: built and compiled once per literal limit
const eventPage = precompileByLimit(2, limit => (db, userId: number, afterSeq: number) => db.selectFrom('events')
  .leftJoin('messages', 'messages.id', 'events.message_id')
  .select(eb => [
    'events.seq', 'events.type', 'events.payload', 'events.created_at',
    'messages.id as m_id', 'messages.sender_id', 'messages.recipient_id', 'messages.created_at as m_created_at', 'messages.client_msg_id',
    eb.case().when('messages.sender_id', '=', userId).then(eb.ref('messages.sender_blob')).else(eb.ref('messages.recipient_blob')).end().as('encrypted_blob')
  ])
  .where('events.user_id', '=', userId)
  .where('events.seq', '>', afterSeq)
  .orderBy('events.seq')
  .limit(sql.lit(limit)))

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
