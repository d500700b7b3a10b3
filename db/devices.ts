import type { Kysely, Transaction } from 'kysely'
import { listContactIds } from './contacts.js'
import { isPostgres } from './dialect.js'
import { appendEvents, type NewEvent } from './events.js'
import { precompile } from './perf/precompiled.js'
import type { Database } from './schema.js'
import type { User } from './users.js'

// An account's devices (1 to 127, as Signal numbers them). Device 1 comes with the account;
// a login that names a registrationId adds the next free number, or registers an existing
// device again. A device's key (devices.id) is never reused: registering again replaces the
// row, and its tokens, keys and event stream, which hang off the old key, go with it.

/** A device as a token names it: its key (devices.id) and its number (1 to 127). */
export interface Device {
  key: number
  id: number
}

export interface DeviceInfo {
  id: number
  name: string | null
  registrationId: number | null
  created: number
  lastSeen: number
}

export const DAY_MS = 86_400_000

/** The start of the UTC day of `ms`: when a device was last seen is kept to the day, no finer. */
export function dayStart (ms: number): number {
  return ms - ms % DAY_MS
}

const FIRST_ADDED = 2
const LAST_DEVICE = 127

/** Marks the device seen today (once a day: the caller checks the day it read). */
export async function touchDevice (db: Kysely<Database>, key: number, day: number): Promise<void> {
  await touch.rows(db, { key, day })
}

const touch = precompile((db, p: { key: number, day: number }) => db.updateTable('devices')
  .set({ last_seen_at: p.day }).where('id', '=', p.key).where('last_seen_at', '<', p.day))

/** Device 1 of the user (every account has it). */
export async function primaryDevice (db: Kysely<Database>, userId: number): Promise<Device | undefined> {
  const row = await primary.first(db, { userId })
  return row === undefined ? undefined : { key: row.id, id: row.device_id }
}

const primary = precompile((db, p: { userId: number }) => db.selectFrom('devices').select(['id', 'device_id'])
  .where('user_id', '=', p.userId).where('device_id', '=', 1))

export async function listDevices (db: Kysely<Database>, userId: number): Promise<DeviceInfo[]> {
  const rows = await db.selectFrom('devices')
    .select(['device_id', 'name', 'registration_id', 'created_at', 'last_seen_at'])
    .where('user_id', '=', userId).orderBy('device_id').execute()
  return rows.map(row => ({ id: row.device_id, name: row.name, registrationId: row.registration_id, created: row.created_at, lastSeen: row.last_seen_at }))
}

export interface Registration {
  /** An existing device to register again; absent: add a device. */
  id?: number | undefined
  registrationId: number
  name?: string | undefined
}

export type RegisterOutcome =
  | {
    device: Device
    /** The key the device had before (registered again with a new registrationId): its sessions must close. */
    replaced: number | undefined
    /** Users whose streams got `devices_changed` (the account itself and its contacts): wake them. */
    notify: number[]
  }
  | 'too-many'
  | 'unknown-device'

/**
 * Adds a device, or registers an existing one again. Naming a device with the registrationId
 * it already has only renames it (when `name` is given): that is a client logging in again,
 * not a new install, and its stream and keys stay. A new registrationId replaces the device:
 * a new key, its old tokens, keys and queue gone. Either change tells the account's other
 * devices and its contacts `devices_changed`.
 */
export async function registerDevice (db: Kysely<Database>, user: User, registration: Registration, maxDevices: number, now = Date.now()): Promise<RegisterOutcome> {
  return await db.transaction().execute(async trx => {
    // PostgreSQL: two logins adding a device at once would pick the same free number
    if (isPostgres(trx)) await trx.selectFrom('users').select('id').where('id', '=', user.id).forUpdate().execute()
    const devices = await trx.selectFrom('devices').select(['id', 'device_id', 'registration_id', 'name']).where('user_id', '=', user.id).orderBy('device_id').execute()
    const fields = { registration_id: registration.registrationId, name: registration.name ?? null, created_at: now, last_seen_at: dayStart(now) }
    let replaced: number | undefined
    let deviceId: number
    if (registration.id === undefined) {
      const taken = new Set(devices.map(device => device.device_id))
      let free = FIRST_ADDED
      while (taken.has(free)) free++
      if (devices.length >= maxDevices || free > LAST_DEVICE) return 'too-many'
      deviceId = free
    } else {
      const existing = devices.find(device => device.device_id === registration.id)
      if (existing === undefined) return 'unknown-device'
      deviceId = existing.device_id
      if (existing.registration_id === registration.registrationId) {
        if (registration.name !== undefined && registration.name !== existing.name) {
          await trx.updateTable('devices').set({ name: registration.name }).where('id', '=', existing.id).execute()
        }
        return { device: { key: existing.id, id: deviceId }, replaced: undefined, notify: [] }
      }
      replaced = existing.id
      // its events, keys and whatever else hangs off the key go by the foreign keys' cascade
      await trx.deleteFrom('devices').where('id', '=', existing.id).execute()
      if (registration.name === undefined) fields.name = existing.name
    }
    const added = await trx.insertInto('devices').values({ user_id: user.id, device_id: deviceId, ...fields }).returning('id').executeTakeFirstOrThrow()
    const others = devices.filter(device => device.id !== replaced).map(device => device.id)
    const notify = await tellDevicesChanged(trx, user, others, now)
    return { device: { key: added.id, id: deviceId }, replaced, notify }
  })
}

/**
 * Removes device `deviceId` of the user (never device 1: it is the account's own); the
 * removed device's key, or undefined when there is no such device.
 */
export async function removeDevice (db: Kysely<Database>, user: User, deviceId: number, now = Date.now()): Promise<{ key: number, notify: number[] } | undefined> {
  return await db.transaction().execute(async trx => {
    const removed = await trx.deleteFrom('devices').where('user_id', '=', user.id).where('device_id', '=', deviceId).where('device_id', '<>', 1)
      .returning('id').executeTakeFirst()
    if (removed === undefined) return undefined
    const others = await trx.selectFrom('devices').select('id').where('user_id', '=', user.id).execute()
    const notify = await tellDevicesChanged(trx, user, others.map(device => device.id), now)
    return { key: removed.id, notify }
  })
}

/** `devices_changed` to these devices of the user and to every device of its contacts; whom to wake. */
async function tellDevicesChanged (trx: Transaction<Database>, user: User, ownDevices: number[], now: number): Promise<number[]> {
  const contacts = await listContactIds(trx, user.id)
  const payload = { username: user.username }
  const events: NewEvent[] = [
    ...ownDevices.map(key => ({ userId: user.id, deviceKey: key, type: 'devices_changed' as const, payload })),
    ...contacts.map(id => ({ userId: id, type: 'devices_changed' as const, payload }))
  ]
  await appendEvents(trx, events, now)
  return [user.id, ...contacts]
}
