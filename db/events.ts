import { sql, type Insertable, type Kysely, type RawBuilder, type Transaction } from 'kysely'
import { isPostgres } from './dialect.js'
import { precompilePage } from './perf/pages.js'
import { precompile, precompileRows, precompileSql } from './perf/precompiled.js'
import type { Database, EventsTable, NewMessage } from './schema.js'

// Each device's event stream: what happened to its account (or to it alone), numbered
// 1, 2, 3... in commit order. Other modules append events inside the transaction that makes
// the change, and publish a wake-up (the hub, by user) only after that transaction commits.

/** The stored fields of each event type (message events also point at their message row). */
export interface EventPayloads {
  message: { sender_username: string, recipient_username: string }
  chat_request: { requester_username: string }
  chat_accepted: { username: string }
  chat_declined: { username: string }
  request_cancelled: { username: string }
  contact_removed: { username: string }
  key_changed: { username: string }
  /** With `device`: the sends (ids of PUT /v1/messages) that device of `username` acknowledged. */
  delivered: { username: string, message_ids: number[], device?: number }
  expired_undelivered: { username: string, message_ids: number[], device?: number }
  /** A ciphertext for this device; the envelope row (pointed at by envelopeId) holds it. */
  envelope: { sourceUsername: string, sourceDevice: number }
  /** Deliberately empty: stored after the erasure, it must not name the erased user (db/erasure.ts). */
  contact_deleted: Record<string, never>
  /** A device of `username` (a contact, or one's own account) was added, removed or registered again. */
  devices_changed: { username: string }
  /** To one device: a claim left it fewer than 10 one-time prekeys of a kind (db/prekeys.ts). */
  prekeys_low: { count: number, pqCount: number }
}
export type EventType = keyof EventPayloads

/**
 * An event for one user: every device of theirs gets it (each in its own stream), or with
 * `deviceKey` (devices.id) only that device, when it is still the user's.
 */
export type NewEvent = {
  [T in EventType]: { userId: number, deviceKey?: number, type: T, payload: EventPayloads[T], messageId?: number, envelopeId?: number }
}[EventType]

export type StoredEvent = {
  [T in EventType]: {
    seq: number
    type: T
    payload: EventPayloads[T]
    created_at: number
    /** The reader's own copy of the message, or null (not a message event, or the message is gone). */
    message: EventMessage | null
    /** An envelope event's envelope, or null. */
    envelope: EventEnvelope | null
  }
}[EventType]

export interface EventEnvelope {
  /** The send's id (what the sender got back, and acknowledges by). */
  id: number
  type: number
  content: string
  created_at: number
}

export interface EventMessage {
  id: number
  sender_id: number
  recipient_id: number
  created_at: number
  client_msg_id: string | null
  encrypted_blob: string
}

/**
 * Appends events inside the caller's transaction: each to every device of its user (or to
 * its one device), numbered by that device's counter. Nothing for a user or device that no
 * longer exists. On PostgreSQL the devices are locked in ascending key first, so that two
 * transactions touching the same devices lock them in the same order and cannot deadlock.
 */
export async function appendEvents (trx: Transaction<Database>, events: NewEvent[], now = Date.now(), detail?: EventDetail): Promise<Appended> {
  const appended: Appended = new Map()
  if (events.length === 0) return appended
  const rows: EventRow[] = []
  // each event as a reader of the device's stream will see it, unless it needs a row only the caller knows
  const unknown = new Set<number>()
  // one serialisation per event, however many devices get it
  const payloads = new Map(events.map(event => [event, JSON.stringify(event.payload)]))
  const row = (event: NewEvent, deviceKey: number, seq: number, userId: number): EventRow => {
    const shown = shownEvent(event, seq, now, detail?.(event, userId, deviceKey))
    if (shown === undefined) unknown.add(deviceKey)
    else addTo(appended, deviceKey, shown)
    return { device_id: deviceKey, seq, type: event.type, payload: payloads.get(event) as string, message_id: event.messageId ?? null, envelope_id: event.envelopeId ?? null, created_at: now }
  }
  const users = [...new Set(events.flatMap(event => event.deviceKey === undefined ? [event.userId] : []))]
  if (!isPostgres(trx) && users.length === events.length) {
    // SQLite has a single writer: one UPDATE numbers one event for each device of each user
    const bumped = await bumpUsers(trx, users)
    for (const event of events) {
      for (const device of bumped) if (device.user_id === event.userId) rows.push(row(event, device.id, device.event_seq, device.user_id))
    }
  } else if (!isPostgres(trx) && users.length === 0 && new Set(events.map(event => event.deviceKey)).size === events.length) {
    // SQLite, one event for each of these devices (a send's envelopes): by two precompiled
    // statements, the single writer's counters read and then moved on, those of devices still their user's
    const devices = new Map((await countersIn.rows(trx, { ids: JSON.stringify(events.map(event => event.deviceKey)) })).map(device => [device.id, device]))
    const owned = events.filter(event => devices.get(event.deviceKey as number)?.user_id === event.userId)
    if (owned.length > 0) await bumpIn.rows(trx, { ids: JSON.stringify(owned.map(event => event.deviceKey)) })
    for (const event of owned) {
      const device = devices.get(event.deviceKey as number) as { id: number, user_id: number, event_seq: number }
      rows.push(row(event, device.id, device.event_seq + 1, device.user_id))
    }
  } else {
    const keys = [...new Set(events.flatMap(event => event.deviceKey === undefined ? [] : [event.deviceKey]))]
    const targets = await trx.selectFrom('devices').select(['id', 'user_id'])
      .where(eb => eb.or([
        ...users.length > 0 ? [eb('user_id', 'in', users)] : [],
        ...keys.length > 0 ? [eb('id', 'in', keys)] : []
      ]))
      .orderBy('id')
      .$if(isPostgres(trx), qb => qb.forUpdate())
      .execute()
    const receivers = events.map(event => targets.filter(device => device.user_id === event.userId && (event.deviceKey === undefined || device.id === event.deviceKey)))
    const counts = new Map<number, number>()
    for (const device of receivers.flat()) counts.set(device.id, (counts.get(device.id) ?? 0) + 1)
    // the next seq of each device: its counter moved on by how many events it gets
    const next = new Map<number, number>()
    for (const [n, ids] of groupBy(counts)) {
      const bumped = await trx.updateTable('devices').set(eb => ({ event_seq: eb('event_seq', '+', n) }))
        .where('id', 'in', ids).returning(['id', 'event_seq']).execute()
      for (const device of bumped) next.set(device.id, device.event_seq - n + 1)
    }
    events.forEach((event, index) => {
      for (const device of receivers[index] ?? []) {
        const seq = next.get(device.id)
        if (seq === undefined) continue
        next.set(device.id, seq + 1)
        rows.push(row(event, device.id, seq, device.user_id))
      }
    })
  }
  // one multi-row insert: a message's events cost one statement, however many devices get them
  if (rows.length > 0) await insertEvents(trx, rows)
  for (const deviceKey of unknown) appended.delete(deviceKey)
  return appended
}

/**
 * What a transaction appended, by device key, in seq order: each event as readEvents will
 * read it back. Published with the commit's wake-up (plugins/app/hub.ts), so that this
 * instance's sockets can send it without reading it back (routes/realtime/connection.ts).
 * A device whose events could not all be shown (a message or envelope event without its
 * row) is left out: its sockets read.
 */
export type Appended = Map<number, StoredEvent[]>

/** The message or envelope row a message or envelope event shows, as the reader (device `deviceKey` of `userId`) sees it. */
export type EventDetail = (event: NewEvent, userId: number, deviceKey: number) => { message?: EventMessage, envelope?: EventEnvelope }

function addTo (appended: Appended, deviceKey: number, event: StoredEvent): void {
  const list = appended.get(deviceKey)
  if (list === undefined) appended.set(deviceKey, [event])
  else list.push(event)
}

/**
 * What one PostgreSQL statement appended (a send, an ack): one event on each
 * of these devices, numbered `seq`, the event `eventOf` its user. As appendEvents builds it.
 */
export function appendedOf (devices: ReadonlyArray<{ key: number, userId: number, seq: number }>, eventOf: (userId: number) => NewEvent | undefined, now: number, detail?: EventDetail): Appended {
  const appended: Appended = new Map()
  for (const device of devices) {
    const event = eventOf(device.userId)
    const shown = event === undefined ? undefined : shownEvent(event, device.seq, now, detail?.(event, device.userId, device.key))
    if (shown !== undefined) addTo(appended, device.key, shown)
  }
  return appended
}

/**
 * The end of a PostgreSQL statement that acknowledges (ackMessages, ackEnvelopes), after a
 * CTE `senders (sender_id, ids)`: each sender's devices locked in key order and bumped as
 * appendEvents does, one `delivered` event each (`payload`, an expression over senders.ids),
 * then a select of `head`'s columns beside what was appended (ToldRow), at least one row.
 */
export function tellSendersInStatement (payload: RawBuilder<unknown>, head: RawBuilder<unknown>, now: number): RawBuilder<unknown> {
  return sql`locked as (
      select id from devices where user_id in (select sender_id from senders) order by id for update
    ), bumped as (
      update devices set event_seq = devices.event_seq + 1 from locked where devices.id = locked.id
      returning devices.id, devices.user_id, devices.event_seq
    ), appended as (
      insert into events (device_id, seq, type, payload, created_at)
      select bumped.id, bumped.event_seq, 'delivered', ${payload}::text, ${now}::bigint
      from bumped join senders on senders.sender_id = bumped.user_id
    )
    select ${head}, told.id as device_key, told.user_id, told.event_seq as seq, told.ids
    from (select 1) as one left join (select bumped.*, senders.ids from bumped join senders on senders.sender_id = bumped.user_id) as told on true`
}

/** A row of tellSendersInStatement: a sender's device and its `delivered` event's seq and ids (all null when none was). */
export interface ToldRow { device_key: number | null, user_id: number | null, seq: number | null, ids: number[] | null }

/** The `delivered` events such a statement appended (as appendEvents builds them), and the senders told. */
export function toldSenders (rows: ToldRow[], payload: (ids: number[]) => EventPayloads['delivered'], now: number): { notify: number[], appended: Appended } {
  const idsOf = new Map<number, number[]>()
  const devices: Array<{ key: number, userId: number, seq: number }> = []
  for (const row of rows) {
    if (row.device_key === null || row.user_id === null || row.seq === null || row.ids === null) continue
    devices.push({ key: Number(row.device_key), userId: Number(row.user_id), seq: Number(row.seq) })
    idsOf.set(Number(row.user_id), row.ids.map(Number))
  }
  const appended = appendedOf(devices, userId => {
    const ids = idsOf.get(userId)
    return ids === undefined ? undefined : { userId, type: 'delivered', payload: payload(ids) }
  }, now)
  return { notify: [...idsOf.keys()], appended }
}

/** The event as readEvents reads it back; undefined when it needs a row `detail` does not give. */
function shownEvent (event: NewEvent, seq: number, now: number, detail: ReturnType<EventDetail> | undefined): StoredEvent | undefined {
  const message = detail?.message ?? null
  const envelope = detail?.envelope ?? null
  if ((event.type === 'message' && message === null) || (event.type === 'envelope' && envelope === null)) return undefined
  return { seq, type: event.type, payload: event.payload, created_at: now, message, envelope } as StoredEvent
}

/** The devices by how many events each gets: one UPDATE per distinct count (usually one). */
function groupBy (counts: Map<number, number>): Map<number, number[]> {
  const groups = new Map<number, number[]>()
  for (const [id, n] of counts) groups.set(n, [...groups.get(n) ?? [], id])
  return groups
}

/** SQLite: bumps the counter of every device of these distinct users once, in one statement. */
async function bumpUsers (trx: Transaction<Database>, users: number[]): Promise<Array<{ id: number, user_id: number, event_seq: number }>> {
  const [a, b] = users as [number, number | undefined]
  // without RETURNING, which makes SQLite build and drop a temporary table each time: the
  // single writer's SELECT right after reads what its UPDATE wrote
  if (users.length === 1) {
    await bumpOne.rows(trx, { a })
    return await countersOne.rows(trx, { a })
  }
  if (users.length === 2 && b !== undefined) {
    await bumpTwo.rows(trx, { a, b })
    return await countersTwo.rows(trx, { a, b })
  }
  return await trx.updateTable('devices').set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
    .where('user_id', 'in', users).returning(['id', 'user_id', 'event_seq']).execute()
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
 * two users' devices are locked in key order first, as appendEvents does, so that concurrent
 * sends cannot deadlock; the counters then follow commit order as every device's stream must.
 */
export async function storeMessageWithEvents (
  db: Kysely<Database>, message: NewMessage, payload: EventPayloads['message']
): Promise<{ id: number, created_at: number, devices: Array<{ key: number, userId: number, seq: number }> }> {
  const rows = await storeMessage.rows(db, { message, payload: JSON.stringify(payload) })
  const first = rows[0]
  if (first === undefined) throw new Error('insert returned no row')
  const devices = rows.flatMap(row => row.device_key === null || row.user_id === null || row.seq === null ? [] : [{ key: Number(row.device_key), userId: Number(row.user_id), seq: Number(row.seq) }])
  return { id: first.id, created_at: first.created_at, devices }
}

// every send_message on PostgreSQL runs it: built and compiled once
const storeMessage = precompileSql((p: { message: NewMessage, payload: string }) => sql<{ id: number, created_at: number, device_key: number | null, user_id: number | null, seq: number | null }>`
    with locked as (
      select id from devices where user_id in (${p.message.sender_id}, ${p.message.recipient_id}) order by id for update
    ), bumped as (
      update devices set event_seq = devices.event_seq + 1 from locked where devices.id = locked.id
      returning devices.id, devices.user_id, devices.event_seq
    ), stored as (
      insert into messages (sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, client_msg_id, created_at)
      values (${p.message.sender_id}, ${p.message.recipient_id}, ${p.message.user_lo}, ${p.message.user_hi},
        ${p.message.sender_blob}, ${p.message.recipient_blob}, ${p.message.client_msg_id}, ${p.message.created_at})
      returning id, created_at
    ), appended as (
      insert into events (device_id, seq, type, payload, message_id, created_at)
      select bumped.id, bumped.event_seq, 'message', ${p.payload}::text, stored.id, ${p.message.created_at}::bigint from bumped, stored
    )
    select stored.id, stored.created_at, bumped.id as device_key, bumped.user_id, bumped.event_seq as seq from stored left join bumped on true`)

type EventRow = Insertable<EventsTable>

// each column read from the event's marker (see perf/precompiled.ts)
const columns = (e: EventRow): EventRow =>
  ({ device_id: e.device_id, seq: e.seq, type: e.type, payload: e.payload, message_id: e.message_id, envelope_id: e.envelope_id, created_at: e.created_at })

// A message to two users of two devices each inserts four events, of one device each two:
// each count of rows up to 16 is compiled once, more go through the builder.
const insertEvents = precompileRows((db, rows: EventRow[]) => db.insertInto('events').values(rows.map(columns)), 16)

// the counters of every device of one user, or of two distinct users, in one statement (SQLite only)
const bumpOne = precompile((db, p: { a: number }) => db.updateTable('devices')
  .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
  .where('user_id', '=', p.a))
const bumpTwo = precompile((db, p: { a: number, b: number }) => db.updateTable('devices')
  .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
  .where('user_id', 'in', [p.a, p.b]))
const countersOne = precompile((db, p: { a: number }) => db.selectFrom('devices').select(['id', 'user_id', 'event_seq'])
  .where('user_id', '=', p.a))
const countersTwo = precompile((db, p: { a: number, b: number }) => db.selectFrom('devices').select(['id', 'user_id', 'event_seq'])
  .where('user_id', 'in', [p.a, p.b]))

/** SQLite: the numbers of a JSON array, as the right side of `in`: one precompiled statement serves any number of them. */
export const jsonList = (ids: string): RawBuilder<number> => sql<number>`(select value from json_each(${ids}))`

// the counters of the devices listed, SQLite only
const countersIn = precompile((db, p: { ids: string }) => db.selectFrom('devices').select(['id', 'user_id', 'event_seq'])
  .where('id', 'in', jsonList(p.ids)))
const bumpIn = precompile((db, p: { ids: string }) => db.updateTable('devices')
  .set(eb => ({ event_seq: eb('event_seq', '+', 1) }))
  .where('id', 'in', jsonList(p.ids)))

/** The device's latest seq and the highest seq retention has deleted; undefined for no such device. */
export async function streamBounds (db: Kysely<Database>, deviceKey: number): Promise<{ seq: number, floor: number } | undefined> {
  const row = await bounds.first(db, { deviceKey })
  return row === undefined ? undefined : { seq: row.event_seq, floor: row.event_floor }
}

const bounds = precompile((db, p: { deviceKey: number }) => db.selectFrom('devices').select(['event_seq', 'event_floor']).where('id', '=', p.deviceKey))

/**
 * The events of device `deviceKey` (of user `userId`) after `afterSeq`, oldest first, at
 * most `limit` (one more is read to tell whether there are more).
 */
export async function readEvents (
  db: Kysely<Database>, userId: number, deviceKey: number, afterSeq: number, limit: number
): Promise<{ events: StoredEvent[], hasMore: boolean }> {
  const { rows, hasMore } = await eventPage(db, { userId, deviceKey, afterSeq }, limit)
  return {
    hasMore,
    events: rows.map(row => ({
      seq: row.seq,
      type: row.type,
      payload: JSON.parse(row.payload),
      created_at: row.created_at,
      envelope: row.e_id === null || row.e_type === null || row.e_content === null || row.e_created_at === null
        ? null
        : { id: row.e_id, type: row.e_type, content: row.e_content, created_at: row.e_created_at },
      message: row.m_id === null || row.sender_id === null || row.recipient_id === null || row.m_created_at === null || row.encrypted_blob === null
        ? null
        : { id: row.m_id, sender_id: row.sender_id, recipient_id: row.recipient_id, created_at: row.m_created_at, client_msg_id: row.client_msg_id, encrypted_blob: row.encrypted_blob }
    }) as StoredEvent)
  }
}

// every sync and every socket wake-up reads a page: built and compiled once per page size
const eventPage = precompilePage((db, p: { userId: number, deviceKey: number, afterSeq: number }, limit) => db.selectFrom('events')
  .leftJoin('messages', 'messages.id', 'events.message_id')
  .leftJoin('envelopes', 'envelopes.id', 'events.envelope_id')
  .select(eb => [
    'envelopes.send_id as e_id', 'envelopes.type as e_type', 'envelopes.content as e_content', 'envelopes.created_at as e_created_at',
    'events.seq', 'events.type', 'events.payload', 'events.created_at',
    'messages.id as m_id', 'messages.sender_id', 'messages.recipient_id', 'messages.created_at as m_created_at', 'messages.client_msg_id',
    eb.case().when('messages.sender_id', '=', p.userId).then(eb.ref('messages.sender_blob')).else(eb.ref('messages.recipient_blob')).end().as('encrypted_blob')
  ])
  .where('events.device_id', '=', p.deviceKey)
  .where('events.seq', '>', p.afterSeq)
  .orderBy('events.seq')
  .limit(limit))

/**
 * Deletes events created before `cutoff`, first moving each affected device's floor up to
 * the highest seq being deleted, so that a cursor from before then is known to be stale.
 */
export async function purgeEvents (db: Kysely<Database>, cutoff: number): Promise<number> {
  return await db.transaction().execute(async trx => {
    await trx.updateTable('devices')
      .set(eb => ({
        event_floor: eb.selectFrom('events').select(e => e.fn.max('events.seq').as('m'))
          .whereRef('events.device_id', '=', 'devices.id').where('events.created_at', '<', cutoff)
      }))
      .where(eb => eb.exists(eb.selectFrom('events').select('events.seq').whereRef('events.device_id', '=', 'devices.id').where('events.created_at', '<', cutoff)))
      .execute()
    // By age, on its index: an event a few ms younger than the cutoff but below the new
    // floor (seqs follow commit order, times follow the clock) is out of every cursor's
    // reach already, and goes at the next sweep.
    const result = await trx.deleteFrom('events').where('created_at', '<', cutoff).executeTakeFirst()
    return Number(result.numDeletedRows)
  })
}
