import type { Kysely, Transaction } from 'kysely'
import type { Device } from './devices.js'
import { isPostgres, isUniqueViolation } from './dialect.js'
import { appendEvents, type Appended, type NewEvent } from './events.js'
import type { Database } from './schema.js'
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
    return await db.transaction().execute(async trx => {
      if (clientMsgId !== undefined) {
        const earlier = await earlierSend(trx, sender.id, clientMsgId)
        if (earlier !== undefined) return replayed(earlier, recipient)
      }
      const devices = await trx.selectFrom('devices').select(['id', 'device_id', 'registration_id'])
        .where('user_id', '=', recipient.id).where('registration_id', 'is not', null)
        .orderBy('id')
        .$if(isPostgres(trx), qb => qb.forUpdate())
        .execute()
      const targets = devices.filter(device => device.id !== from.key)
      const byNumber = new Map(targets.map(device => [device.device_id, device]))
      const named = new Set(envelopes.map(envelope => envelope.destinationDeviceId))
      const missingDevices = targets.filter(device => !named.has(device.device_id)).map(device => device.device_id)
      const extraDevices = [...named].filter(id => !byNumber.has(id)).sort((a, b) => a - b)
      if (missingDevices.length > 0 || extraDevices.length > 0) return { kind: 'mismatch', missingDevices, extraDevices }
      const staleDevices = envelopes.filter(envelope => byNumber.get(envelope.destinationDeviceId)?.registration_id !== envelope.destinationRegistrationId)
        .map(envelope => envelope.destinationDeviceId).sort((a, b) => a - b)
      if (staleDevices.length > 0) return { kind: 'stale', staleDevices }

      const send = await trx.insertInto('sends')
        .values({ sender_id: sender.id, recipient_id: recipient.id, client_msg_id: clientMsgId ?? null, created_at: now })
        .returning(['id', 'created_at']).executeTakeFirstOrThrow()
      const stored = envelopes.length === 0
        ? []
        : await trx.insertInto('envelopes').values(envelopes.map(envelope => ({
          send_id: send.id,
          device_id: (byNumber.get(envelope.destinationDeviceId) as { id: number }).id,
          source_device: from.id,
          type: envelope.type,
          content: envelope.content,
          created_at: now
        }))).returning(['id', 'device_id']).execute()
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
  return await db.transaction().execute(async trx => {
    const rows = await trx.selectFrom('envelopes').innerJoin('sends', 'sends.id', 'envelopes.send_id')
      .select(['envelopes.id', 'envelopes.send_id', 'sends.sender_id'])
      .where('envelopes.device_id', '=', device.key).where('envelopes.send_id', 'in', sendIds)
      .execute()
    if (rows.length === 0) return { acknowledged: 0, notify: [], appended: new Map() }
    const deleted = await trx.deleteFrom('envelopes').where('id', 'in', rows.map(row => row.id)).returning('id').execute()
    const gone = new Set(deleted.map(row => row.id))
    const { notify, appended } = await tellSenders(trx, 'delivered', rows.filter(row => gone.has(row.id))
      .map(row => ({ ...row, user_id: recipient.id, username: recipient.username, device_id: device.id })), now)
    return { acknowledged: gone.size, notify, appended }
  })
}

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
