import { sql, type Insertable, type Kysely, type Transaction } from 'kysely'
import type { Device } from './devices.js'
import { isPostgres, isUniqueViolation } from './dialect.js'
import { appendEvents, appendedOf, jsonList, tellSendersInStatement, toldSenders, type Appended, type NewEvent, type ToldRow } from './events.js'
import { inGroupTransaction } from './perf/group-commit.js'
import { precompile, precompileRows, precompileSql } from './perf/precompiled.js'
import type { Database, EnvelopesTable } from './schema.js'
import type { User } from './users.js'

// Per-device messages, as Signal-Server's PUT /v1/messages: one ciphertext for each device of
// the recipient (or, sent to oneself, for each other device of one's own), checked against the
// device set in the transaction that stores them, so that no device is silently left out.
// Each envelope lives until its device acknowledges it.

export interface OutgoingEnvelope {
  type: number
  destinationDeviceId: number
  destinationRegistrationId: number
  content: string
}

export type SendOutcome =
  | { kind: 'stored', id: number, created_at: number, appended: Appended }
  | { kind: 'duplicate', id: number, created_at: number }
  /** The list does not cover exactly the recipient's registered devices. */
  | { kind: 'mismatch', missingDevices: number[], extraDevices: number[] }
  /** These devices were registered again since the sender fetched their bundles. */
  | { kind: 'stale', staleDevices: number[] }
  /** The client_msg_id was used for a send to someone else. */
  | { kind: 'reused' }

/**
 * Stores one envelope per destination device, or nothing with the reason. The devices that
 * must be covered are the recipient's registered devices (those with a registrationId), less
 * the sending device when the recipient is the sender. On PostgreSQL they are locked in key
 * order first (as appendEvents locks them), so that a device added or registered again
 * meanwhile is either in this check or after this send.
 */
export async function sendEnvelopes (
  db: Kysely<Database>, sender: User, from: Device, recipient: User, envelopes: OutgoingEnvelope[], clientMsgId: string | undefined, now = Date.now()
): Promise<SendOutcome> {
  try {
    // PostgreSQL checks and stores in one statement (see below); SQLite groups the commit, as send_message does
    if (isPostgres(db)) {
      if (clientMsgId !== undefined) {
        const earlier = await earlierSend(db, sender.id, clientMsgId)
        if (earlier !== undefined) return replayed(earlier, recipient)
      }
      return await sendInOneStatement(db, sender, from, recipient, envelopes, clientMsgId, now)
    }
    return await inGroupTransaction(db, async trx => {
      if (clientMsgId !== undefined) {
        const earlier = await earlierSend(trx, sender.id, clientMsgId)
        if (earlier !== undefined) return replayed(earlier, recipient)
      }
      const devices = await registeredDevices.rows(trx, { userId: recipient.id })
      const refused = refusal(devices, from, envelopes)
      if (refused !== undefined) return refused
      const byNumber = new Map(devices.map(device => [device.device_id, device]))
      const send = await insertSend.first(trx, { senderId: sender.id, recipientId: recipient.id, clientMsgId: clientMsgId ?? null, now }) as { id: number, created_at: number }
      const stored = await insertEnvelopes(trx, envelopes.map(envelope => ({
        send_id: send.id,
        device_id: (byNumber.get(envelope.destinationDeviceId) as { id: number }).id,
        source_device: from.id,
        type: envelope.type,
        content: envelope.content,
        created_at: now
      })))
      const payload = { sourceUsername: sender.username, sourceDevice: from.id }
      const contentOf = new Map(envelopes.map(envelope => [byNumber.get(envelope.destinationDeviceId)?.id, envelope]))
      const appended = await appendEvents(trx, stored.map((envelope): NewEvent => ({ userId: recipient.id, deviceKey: envelope.device_id, type: 'envelope', payload, envelopeId: envelope.id })), now,
        event => {
          const envelope = contentOf.get(event.deviceKey)
          return envelope === undefined ? {} : { envelope: { id: send.id, type: envelope.type, content: envelope.content, created_at: now } }
        })
      return { kind: 'stored', id: send.id, created_at: send.created_at, appended }
    })
  } catch (error) {
    // a concurrent retry with the same client_msg_id stored it first
    if (clientMsgId === undefined || !isUniqueViolation(error)) throw error
    const earlier = await earlierSend(db, sender.id, clientMsgId)
    if (earlier === undefined) throw error
    return replayed(earlier, recipient)
  }
}

// SQLite: every send runs them, built and compiled once (the envelopes' insert once per count)
const registeredDevices = precompile((db, p: { userId: number }) => db.selectFrom('devices').select(['id', 'device_id', 'registration_id'])
  .where('user_id', '=', p.userId).where('registration_id', 'is not', null)
  .orderBy('id'))
const insertSend = precompile((db, p: { senderId: number, recipientId: number, clientMsgId: string | null, now: number }) => db.insertInto('sends')
  .values({ sender_id: p.senderId, recipient_id: p.recipientId, client_msg_id: p.clientMsgId, created_at: p.now })
  .returning(['id', 'created_at']))
type EnvelopeRow = Insertable<EnvelopesTable>
// each column read from the row's marker; a send holds at most 127 envelopes (the schema's maxItems)
const insertEnvelopes = precompileRows((db, rows: EnvelopeRow[]) => db.insertInto('envelopes')
  .values(rows.map(e => ({ send_id: e.send_id, device_id: e.device_id, source_device: e.source_device, type: e.type, content: e.content, created_at: e.created_at })))
  .returning(['id', 'device_id']), 127)

type RegisteredDevice = { id: number, device_id: number, registration_id: number | null }

/**
 * Why these envelopes cannot go to the recipient's registered `devices` (the sending device
 * is never a destination): devices missing or extra, else devices registered again since;
 * undefined when they can.
 */
function refusal (devices: RegisteredDevice[], from: Device, envelopes: OutgoingEnvelope[]): SendOutcome | undefined {
  const targets = devices.filter(device => device.id !== from.key)
  const byNumber = new Map(targets.map(device => [device.device_id, device]))
  const named = new Set(envelopes.map(envelope => envelope.destinationDeviceId))
  const missingDevices = targets.filter(device => !named.has(device.device_id)).map(device => device.device_id)
  const extraDevices = [...named].filter(id => !byNumber.has(id)).sort((a, b) => a - b)
  if (missingDevices.length > 0 || extraDevices.length > 0) return { kind: 'mismatch', missingDevices, extraDevices }
  const staleDevices = envelopes.filter(envelope => byNumber.get(envelope.destinationDeviceId)?.registration_id !== envelope.destinationRegistrationId)
    .map(envelope => envelope.destinationDeviceId).sort((a, b) => a - b)
  if (staleDevices.length > 0) return { kind: 'stale', staleDevices }
  return undefined
}

/**
 * PostgreSQL: the device check, the send, its envelopes and their events in one statement,
 * that is one transaction and one round trip instead of eight. The recipient's registered
 * devices are locked in key order first (as appendEvents and storeMessageWithEvents lock
 * them: no deadlock between them), and the send is stored only when the envelopes name
 * exactly those devices (less the sending one) at their current registrationIds; the rows
 * are those of the SQLite path (test/messages/send-envelopes.test.ts runs on both). The
 * statement answers with the devices it locked, from which a refusal names its devices.
 */
async function sendInOneStatement (
  db: Kysely<Database>, sender: User, from: Device, recipient: User, envelopes: OutgoingEnvelope[], clientMsgId: string | undefined, now: number
): Promise<SendOutcome> {
  const payload = { sourceUsername: sender.username, sourceDevice: from.id }
  const rows = await sendStatement.rows(db, {
    recipientId: recipient.id,
    senderId: sender.id,
    fromKey: from.key,
    fromId: from.id,
    numbers: envelopes.map(envelope => envelope.destinationDeviceId),
    registrationIds: envelopes.map(envelope => envelope.destinationRegistrationId),
    types: envelopes.map(envelope => envelope.type),
    contents: envelopes.map(envelope => envelope.content),
    clientMsgId: clientMsgId ?? null,
    payload: JSON.stringify(payload),
    now
  })
  const sent = rows.find(row => row.send_id !== null)
  if (sent === undefined || sent.send_id === null || sent.created_at === null) {
    const refused = refusal(rows, from, envelopes)
    if (refused === undefined) throw new Error('the envelopes were refused for no reason the devices show')
    return refused
  }
  const id = sent.send_id
  // each locked device the statement gave an event, with its own envelope
  const contentOf = new Map(envelopes.map(envelope => [envelope.destinationDeviceId, envelope]))
  const byKey = new Map(rows.map(row => [row.id, contentOf.get(row.device_id)]))
  const event: NewEvent = { userId: recipient.id, type: 'envelope', payload }
  const appended = appendedOf(rows.flatMap(row => row.seq === null ? [] : [{ key: row.id, userId: recipient.id, seq: row.seq }]), () => event, now, (_event, _userId, deviceKey) => {
    const envelope = byKey.get(deviceKey)
    return envelope === undefined ? {} : { envelope: { id, type: envelope.type, content: envelope.content, created_at: now } }
  })
  return { kind: 'stored', id, created_at: sent.created_at, appended }
}

interface SendParams {
  recipientId: number
  senderId: number
  fromKey: number
  fromId: number
  /** Each envelope's destinationDeviceId, destinationRegistrationId, type and content, in four lists. */
  numbers: number[]
  registrationIds: number[]
  types: number[]
  contents: string[]
  clientMsgId: string | null
  /** The envelope events' payload, serialised. */
  payload: string
  now: number
}

const sendStatement = precompileSql((p: SendParams) => sql<RegisteredDevice & { send_id: number | null, created_at: number | null, seq: number | null }>`
    with locked as (
      select id, device_id, registration_id from devices
      where user_id = ${p.recipientId} and registration_id is not null order by id for update
    ), targets as (
      select id, device_id, registration_id from locked where id <> ${p.fromKey}
    ), wanted as (
      select * from unnest(${p.numbers}::int[], ${p.registrationIds}::int[],
        ${p.types}::int[], ${p.contents}::text[]) as w(device_id, registration_id, type, content)
    ), send as (
      insert into sends (sender_id, recipient_id, client_msg_id, created_at)
      select ${p.senderId}::bigint, ${p.recipientId}::bigint, ${p.clientMsgId}::text, ${p.now}::bigint
      where (select count(*) from targets) = cardinality(${p.numbers}::int[])
        and (select count(*) from targets join wanted using (device_id, registration_id)) = cardinality(${p.numbers}::int[])
      returning id, created_at
    ), stored as (
      insert into envelopes (send_id, device_id, source_device, type, content, created_at)
      select send.id, targets.id, ${p.fromId}::int, wanted.type, wanted.content, ${p.now}::bigint
      from send, wanted join targets using (device_id)
      returning id, device_id
    ), bumped as (
      update devices set event_seq = devices.event_seq + 1 from stored where devices.id = stored.device_id
      returning devices.id, devices.event_seq, stored.id as envelope_id
    ), appended as (
      insert into events (device_id, seq, type, payload, envelope_id, created_at)
      select bumped.id, bumped.event_seq, 'envelope', ${p.payload}::text, bumped.envelope_id, ${p.now}::bigint from bumped
    )
    select locked.id, locked.device_id, locked.registration_id, send.id as send_id, send.created_at, bumped.event_seq as seq
    from locked left join send on true left join bumped on bumped.id = locked.id
    order by locked.id`)

/** A retry's answer: the first send's, or 'reused' when that went to someone else. */
function replayed (earlier: { id: number, recipient_id: number, created_at: number }, recipient: User): SendOutcome {
  return earlier.recipient_id === recipient.id ? { kind: 'duplicate', id: earlier.id, created_at: earlier.created_at } : { kind: 'reused' }
}

async function earlierSend (db: Kysely<Database>, senderId: number, clientMsgId: string): Promise<{ id: number, recipient_id: number, created_at: number } | undefined> {
  return await db.selectFrom('sends').select(['id', 'recipient_id', 'created_at'])
    .where('sender_id', '=', senderId).where('client_msg_id', '=', clientMsgId).executeTakeFirst()
}

export interface EnvelopeAck {
  acknowledged: number
  /** Senders that were sent a `delivered` event. */
  notify: number[]
  appended: Appended
}

/**
 * Device `device` of `recipient` acknowledges the envelopes of these sends: they are deleted
 * (their events go with them), and each sender (other than the recipient itself) gets one
 * `delivered` event naming the device. Ids of envelopes it does not have are ignored: an ack
 * sent twice acknowledges nothing the second time.
 */
export async function ackEnvelopes (db: Kysely<Database>, recipient: User, device: Device, sendIds: number[], now = Date.now()): Promise<EnvelopeAck> {
  if (isPostgres(db)) return await ackInOneStatement(db, recipient, device, sendIds, now)
  // on SQLite grouped with the other writes of this turn of the event loop, as sends are
  return await inGroupTransaction(db, async trx => {
    // the single writer deletes what it just read, in the same transaction
    const ids = JSON.stringify(sendIds)
    const rows = await ackedEnvelopes.rows(trx, { deviceKey: device.key, ids })
    if (rows.length === 0) return { acknowledged: 0, notify: [], appended: new Map() }
    await deleteAcked.rows(trx, { deviceKey: device.key, ids })
    const { notify, appended } = await tellSenders(trx, 'delivered',
      rows.map(row => ({ ...row, user_id: recipient.id, username: recipient.username, device_id: device.id })), now)
    return { acknowledged: rows.length, notify, appended }
  })
}

// SQLite: every ack runs them, built and compiled once; the ids, however many, are one
// parameter (a JSON array) rather than a list that would make a statement for each length
const ackedEnvelopes = precompile((db, p: { deviceKey: number, ids: string }) => db.selectFrom('envelopes')
  .innerJoin('sends', 'sends.id', 'envelopes.send_id')
  .select(['envelopes.send_id', 'sends.sender_id'])
  .where('envelopes.device_id', '=', p.deviceKey).where('envelopes.send_id', 'in', jsonList(p.ids)))
const deleteAcked = precompile((db, p: { deviceKey: number, ids: string }) => db.deleteFrom('envelopes')
  .where('device_id', '=', p.deviceKey).where('send_id', 'in', jsonList(p.ids)))

/**
 * PostgreSQL: ackEnvelopes in one statement, one round trip instead of five or more
 * (select, delete, lock, bump, insert, each with BEGIN and COMMIT around them). The same
 * rows as the SQLite path (test/messages/send-envelopes.test.ts runs on both): the device's
 * envelopes of these sends deleted (what this delete removed: of two acks at once, each
 * envelope is counted once), then each sender's devices locked in key order and bumped as
 * appendEvents does, one `delivered` event each naming the device.
 */
async function ackInOneStatement (db: Kysely<Database>, recipient: User, device: Device, sendIds: number[], now: number): Promise<EnvelopeAck> {
  const rows = await ackStatement.rows(db, { recipientId: recipient.id, username: recipient.username, deviceKey: device.key, deviceId: device.id, sendIds, now })
  const told = toldSenders(rows, ids => ({ username: recipient.username, message_ids: ids, device: device.id }), now)
  return { acknowledged: rows[0]?.acknowledged ?? 0, ...told }
}

const ackStatement = precompileSql((p: { recipientId: number, username: string, deviceKey: number, deviceId: number, sendIds: number[], now: number }) => sql<ToldRow & { acknowledged: number }>`
    with gone as (
      delete from envelopes using sends
      where envelopes.device_id = ${p.deviceKey} and envelopes.send_id = any(${p.sendIds}::bigint[]) and sends.id = envelopes.send_id
      returning envelopes.send_id, sends.sender_id
    ), senders as (
      select sender_id, array_agg(send_id order by send_id) as ids from gone where sender_id <> ${p.recipientId} group by sender_id
    ), ${tellSendersInStatement(
      sql`json_build_object('username', ${p.username}::text, 'message_ids', senders.ids, 'device', ${p.deviceId}::int)`,
      sql`(select count(*) from gone)::int as acknowledged`, p.now)}`)

/**
 * One `type` event to each sender per destination device, listing its sends that `envelopes`
 * (deleted) came from; none for envelopes one sent to oneself. The senders told.
 */
async function tellSenders (
  trx: Transaction<Database>, type: 'delivered' | 'expired_undelivered',
  envelopes: Array<{ send_id: number, sender_id: number, user_id: number, username: string, device_id: number }>, now: number
): Promise<{ notify: number[], appended: Appended }> {
  const groups = new Map<string, { senderId: number, username: string, device: number, ids: number[] }>()
  for (const envelope of envelopes) {
    if (envelope.sender_id === envelope.user_id) continue
    const key = `${envelope.sender_id}:${envelope.user_id}:${envelope.device_id}`
    const group = groups.get(key) ?? { senderId: envelope.sender_id, username: envelope.username, device: envelope.device_id, ids: [] }
    group.ids.push(envelope.send_id)
    groups.set(key, group)
  }
  const appended = await appendEvents(trx, [...groups.values()].map((group): NewEvent =>
    ({ userId: group.senderId, type, payload: { username: group.username, message_ids: group.ids.sort((a, b) => a - b), device: group.device } })), now)
  return { notify: [...new Set([...groups.values()].map(group => group.senderId))], appended }
}

/**
 * Retention: deletes envelopes created before `cutoff` (each sender, unless it sent to
 * itself, gets `expired_undelivered` per destination device), then the sends that old.
 * In batches, so that no transaction grows large; returns the senders told.
 */
export async function purgeEnvelopes (db: Kysely<Database>, cutoff: number, batchSize = 500, now = Date.now()): Promise<{ envelopes: number, notify: number[] }> {
  const notify = new Set<number>()
  let count = 0
  for (;;) {
    const batch = await db.transaction().execute(async trx => {
      const rows = await trx.selectFrom('envelopes')
        .innerJoin('sends', 'sends.id', 'envelopes.send_id')
        .innerJoin('devices', 'devices.id', 'envelopes.device_id')
        .innerJoin('users', 'users.id', 'devices.user_id')
        .select(['envelopes.id', 'envelopes.send_id', 'sends.sender_id', 'devices.user_id', 'devices.device_id', 'users.username'])
        .where('envelopes.created_at', '<', cutoff).orderBy('envelopes.id').limit(batchSize)
        .execute()
      if (rows.length === 0) return 0
      // what this delete removed, so that of two instances sweeping at once each envelope is reported once
      const gone = new Set((await trx.deleteFrom('envelopes').where('id', 'in', rows.map(row => row.id)).returning('id').execute()).map(row => row.id))
      for (const id of (await tellSenders(trx, 'expired_undelivered', rows.filter(row => gone.has(row.id)), now)).notify) notify.add(id)
      return rows.length
    })
    count += batch
    if (batch < batchSize) break
  }
  await db.deleteFrom('sends').where('created_at', '<', cutoff).execute()
  return { envelopes: count, notify: [...notify] }
}
