import type { Kysely, Transaction } from 'kysely'
import { listContactIds } from './contacts.js'
import { isPostgres } from './dialect.js'
import { appendEvents } from './events.js'
import type { Database, PrekeyKind } from './schema.js'
import type { User } from './users.js'

// The Signal protocol's key distribution (issue 13): the account's identity key, and per
// device (devices.id, the surrogate) one-time prekeys, a signed EC prekey and a Kyber
// last-resort key. Signatures are checked by the route (xeddsa.ts) before anything here
// runs; keys are stored as the canonical base64 that was checked.

/** Below this many one-time keys of either kind, a claim tells the device (`prekeys_low`). */
export const PREKEYS_LOW = 10

export interface OneTimeKey { keyId: number, publicKey: string }
export interface SignedKey { keyId: number, publicKey: string, signature: string }

/** What one `PUT /v1/keys` stores: each list present and non-empty replaces the device's keys of its kind. */
export interface KeyUpload {
  preKeys?: OneTimeKey[] | undefined
  signedPreKey?: SignedKey | undefined
  pqPreKeys?: SignedKey[] | undefined
  pqLastResortPreKey?: SignedKey | undefined
}

/** The account's identity key, or null while unset. */
export async function findIdentityKey (db: Kysely<Database>, userId: number): Promise<string | null> {
  const row = await db.selectFrom('users').select('identity_key').where('id', '=', userId).executeTakeFirst()
  return row?.identity_key ?? null
}

export type IdentityOutcome = 'set' | 'same' | 'changed' | 'needs_password'

/**
 * Sets the account's identity key. A first key is 'set', the same key again 'same'; a
 * different one is 'needs_password' unless `allowChange` (the caller checked the password),
 * and then 'changed': every prekey of every device of the account is deleted (the old key
 * signed them) and each accepted contact gets `key_changed`, in the same transaction.
 * `notify`: the contacts to wake.
 */
export async function setIdentityKey (db: Kysely<Database>, user: User, identityKey: string, allowChange: boolean, now = Date.now()): Promise<{ outcome: IdentityOutcome, notify: number[] }> {
  return await db.transaction().execute(async trx => {
    // the row lock orders this against a key upload checked against the old identity key
    const current = (await trx.selectFrom('users').select('identity_key').where('id', '=', user.id)
      .$if(isPostgres(trx), qb => qb.forUpdate()).executeTakeFirst())?.identity_key ?? null
    if (current === identityKey) return { outcome: 'same' as const, notify: [] }
    if (current !== null && !allowChange) return { outcome: 'needs_password' as const, notify: [] }
    await trx.updateTable('users').set({ identity_key: identityKey }).where('id', '=', user.id).execute()
    if (current === null) return { outcome: 'set' as const, notify: [] }
    const devices = trx.selectFrom('devices').select('id').where('user_id', '=', user.id)
    await trx.deleteFrom('one_time_prekeys').where('device_key', 'in', devices).execute()
    await trx.deleteFrom('signed_prekeys').where('device_key', 'in', devices).execute()
    const contacts = await listContactIds(trx, user.id)
    await appendEvents(trx, contacts.map(id => ({ userId: id, type: 'key_changed' as const, payload: { username: user.username } })), now)
    return { outcome: 'changed' as const, notify: contacts }
  })
}

/**
 * Stores an upload of the device `deviceKey`, whose signatures were checked against
 * `identityKey`, in one transaction: 'stored'; 'identity_changed' (nothing stored) when the
 * account's identity key is no longer that one; 'device_gone' when the device was removed.
 * A one-time key whose id was already handed out for this device is left out, so it is never
 * handed out again.
 */
export async function storeKeys (db: Kysely<Database>, deviceKey: number, identityKey: string, upload: KeyUpload): Promise<'stored' | 'identity_changed' | 'device_gone'> {
  return await db.transaction().execute(async trx => {
    // the account, then the device, as a claim locks them: an identity change (which locks
    // the account for update) waits for this upload or this one for it, and an upload and a
    // claim of one device take turns
    const owner = await trx.selectFrom('users').select('identity_key')
      .where('id', '=', eb => eb.selectFrom('devices').select('user_id').where('id', '=', deviceKey))
      .$if(isPostgres(trx), qb => qb.forShare()).executeTakeFirst()
    if (owner === undefined) return 'device_gone'
    if (isPostgres(trx) && await trx.selectFrom('devices').select('id').where('id', '=', deviceKey).forUpdate().executeTakeFirst() === undefined) return 'device_gone'
    if (owner.identity_key !== identityKey) return 'identity_changed'
    if (upload.preKeys !== undefined && upload.preKeys.length > 0) {
      await replaceOneTimeKeys(trx, deviceKey, 'ec', upload.preKeys.map(key => ({ ...key, signature: null })))
    }
    if (upload.pqPreKeys !== undefined && upload.pqPreKeys.length > 0) await replaceOneTimeKeys(trx, deviceKey, 'kyber', upload.pqPreKeys)
    if (upload.signedPreKey !== undefined) await putSignedKey(trx, deviceKey, 'ec', upload.signedPreKey)
    if (upload.pqLastResortPreKey !== undefined) await putSignedKey(trx, deviceKey, 'kyber', upload.pqLastResortPreKey)
    return 'stored'
  })
}

async function replaceOneTimeKeys (trx: Transaction<Database>, deviceKey: number, kind: PrekeyKind, keys: Array<OneTimeKey & { signature: string | null }>): Promise<void> {
  // deleted first: on PostgreSQL this waits for a claim holding one of the rows, so the
  // claimed ids read next include it
  await trx.deleteFrom('one_time_prekeys').where('device_key', '=', deviceKey).where('kind', '=', kind).execute()
  const claimed = new Set((await trx.selectFrom('claimed_prekeys').select('key_id')
    .where('device_key', '=', deviceKey).where('kind', '=', kind).where('key_id', 'in', keys.map(key => key.keyId))
    .execute()).map(row => Number(row.key_id)))
  const rows = keys.filter(key => !claimed.has(key.keyId))
    .map(key => ({ device_key: deviceKey, kind, key_id: key.keyId, public_key: key.publicKey, signature: key.signature }))
  if (rows.length > 0) await trx.insertInto('one_time_prekeys').values(rows).execute()
}

async function putSignedKey (trx: Transaction<Database>, deviceKey: number, kind: PrekeyKind, key: SignedKey): Promise<void> {
  const values = { key_id: key.keyId, public_key: key.publicKey, signature: key.signature }
  await trx.insertInto('signed_prekeys').values({ device_key: deviceKey, kind, ...values })
    .onConflict(oc => oc.columns(['device_key', 'kind']).doUpdateSet(values))
    .execute()
}

/** The device's unclaimed one-time keys: `count` EC, `pqCount` Kyber. */
export async function countPrekeys (db: Kysely<Database>, deviceKey: number): Promise<{ count: number, pqCount: number }> {
  const rows = await db.selectFrom('one_time_prekeys')
    .select(eb => ['kind', eb.fn.countAll().as('n')])
    .where('device_key', '=', deviceKey)
    .groupBy('kind')
    .execute()
  const of = (kind: PrekeyKind): number => Number(rows.find(row => row.kind === kind)?.n ?? 0)
  return { count: of('ec'), pqCount: of('kyber') }
}

export interface BundleDevice {
  /** devices.id */
  key: number
  deviceId: number
  registrationId: number
}

/**
 * The devices of the account that have a bundle to give (a registration id, a signed EC
 * prekey and a Kyber last-resort key), by device id: all of them, or the one `deviceId`.
 */
export async function listBundleDevices (db: Kysely<Database>, userId: number, deviceId?: number): Promise<BundleDevice[]> {
  const rows = await db.selectFrom('devices')
    .select(['devices.id', 'devices.device_id', 'devices.registration_id'])
    .where('devices.user_id', '=', userId)
    .where('devices.registration_id', 'is not', null)
    .$if(deviceId !== undefined, qb => qb.where('devices.device_id', '=', deviceId as number))
    .where(eb => eb.exists(eb.selectFrom('signed_prekeys').select('kind').whereRef('device_key', '=', 'devices.id').where('kind', '=', 'ec')))
    .where(eb => eb.exists(eb.selectFrom('signed_prekeys').select('kind').whereRef('device_key', '=', 'devices.id').where('kind', '=', 'kyber')))
    .orderBy('devices.device_id')
    .execute()
  return rows.map(row => ({ key: Number(row.id), deviceId: Number(row.device_id), registrationId: Number(row.registration_id) }))
}

export interface Bundle {
  deviceId: number
  registrationId: number
  signedPreKey: SignedKey
  preKey?: OneTimeKey
  pqPreKey: SignedKey
}

/**
 * Claims a bundle of each device, in one transaction: its signed prekey, one EC one-time key
 * if any is left, and one Kyber one-time key or else the last-resort key. Each one-time key
 * is deleted by the statement that reads it and its id recorded as handed out. A device
 * left with fewer than PREKEYS_LOW of either kind by a claim gets `prekeys_low`. Devices
 * gone (or stripped of keys) since they were listed are left out; none without an identity
 * key (returned with them). `notify`: the account to wake.
 */
export async function claimBundles (db: Kysely<Database>, userId: number, devices: BundleDevice[], now = Date.now()): Promise<{ identityKey: string | null, bundles: Bundle[], notify: number[] }> {
  return await db.transaction().execute(async trx => {
    // the identity key the bundles' signatures are checked against, read in the same
    // transaction (share-locked on PostgreSQL: an identity change, which deletes every
    // prekey, waits for this claim or this claim for it)
    const identityKey = (await trx.selectFrom('users').select('identity_key').where('id', '=', userId)
      .$if(isPostgres(trx), qb => qb.forShare()).executeTakeFirst())?.identity_key ?? null
    if (identityKey === null) return { identityKey, bundles: [], notify: [] }
    // Then the devices, in ascending key as appendEvents locks them: recording a claimed id
    // (a foreign key to the device) share-locks the device, and two claims holding that lock
    // could then both wait to append prekeys_low. Claims of one device take turns; of
    // different devices, none waits for another.
    if (isPostgres(trx) && devices.length > 0) {
      await trx.selectFrom('devices').select('id').where('id', 'in', devices.map(device => device.key)).orderBy('id').forUpdate().execute()
    }
    const bundles: Bundle[] = []
    const low: Array<{ key: number, count: number, pqCount: number }> = []
    for (const device of devices) {
      const signed = await trx.selectFrom('signed_prekeys').select(['kind', 'key_id', 'public_key', 'signature'])
        .where('device_key', '=', device.key).execute()
      const signedEc = signed.find(row => row.kind === 'ec')
      const lastResort = signed.find(row => row.kind === 'kyber')
      if (signedEc === undefined || lastResort === undefined) continue
      const ec = await claimOne(trx, device.key, 'ec')
      const kyber = await claimOne(trx, device.key, 'kyber')
      const pq = kyber ?? lastResort
      bundles.push({
        deviceId: device.deviceId,
        registrationId: device.registrationId,
        signedPreKey: { keyId: Number(signedEc.key_id), publicKey: signedEc.public_key, signature: signedEc.signature },
        ...(ec === undefined ? {} : { preKey: { keyId: Number(ec.key_id), publicKey: ec.public_key } }),
        pqPreKey: { keyId: Number(pq.key_id), publicKey: pq.public_key, signature: pq.signature ?? '' }
      })
      if (ec === undefined && kyber === undefined) continue
      const counts = await countPrekeys(trx, device.key)
      if (counts.count < PREKEYS_LOW || counts.pqCount < PREKEYS_LOW) low.push({ key: device.key, ...counts })
    }
    await appendEvents(trx, low.map(({ key, count, pqCount }) => ({ userId, deviceKey: key, type: 'prekeys_low' as const, payload: { count, pqCount } })), now)
    return { identityKey, bundles, notify: low.length > 0 ? [userId] : [] }
  })
}

/**
 * Deletes and returns the device's lowest one-time key of `kind`, recording its id as handed
 * out. On PostgreSQL the row is picked FOR UPDATE SKIP LOCKED, so that concurrent claims
 * take different keys instead of waiting for (and then missing) the same one; SQLite has one
 * writer at a time.
 */
async function claimOne (trx: Transaction<Database>, deviceKey: number, kind: PrekeyKind): Promise<{ key_id: number, public_key: string, signature: string | null } | undefined> {
  const pick = trx.selectFrom('one_time_prekeys').select('key_id')
    .where('device_key', '=', deviceKey).where('kind', '=', kind)
    .orderBy('key_id').limit(1)
    .$if(isPostgres(trx), qb => qb.forUpdate().skipLocked())
  const claimed = await trx.deleteFrom('one_time_prekeys')
    .where('device_key', '=', deviceKey).where('kind', '=', kind).where('key_id', '=', pick)
    .returning(['key_id', 'public_key', 'signature'])
    .executeTakeFirst()
  if (claimed === undefined) return undefined
  await trx.insertInto('claimed_prekeys').values({ device_key: deviceKey, kind, key_id: claimed.key_id })
    .onConflict(oc => oc.columns(['device_key', 'kind', 'key_id']).doNothing())
    .execute()
  return claimed
}
