import type { FastifyInstance } from 'fastify'
import { Migrator, sql } from 'kysely'
import t from 'tap'
import { migrationProvider } from '../../migrations/index.js'
import { claimBundles, countPrekeys, listBundleDevices, setIdentityKey, storeKeys } from '../../db/prekeys.js'
import { PASSWORD, build, call, postgresUrl, rowCounts, user } from '../helper.js'
import { deviceLogin, ecKey, ids, kyberKey, newIdentity, signedEcKey, type Identity } from '../fixtures/prekeys.js'

// The queries under the key routes, on whichever database the run uses (SQLite, or
// PostgreSQL with DATABASE_URL): claims are atomic, a claimed id is never stored again, and
// the keys go with their device and their account.

async function account (app: FastifyInstance, name: string, ec: number, pq: number): Promise<{ id: number, key: number, identity: Identity, token: string }> {
  await user(app, name)
  const token = await deviceLogin(app, name, { id: 1, registrationId: 77 })
  const row = await app.db.selectFrom('devices').innerJoin('users', 'users.id', 'devices.user_id')
    .select(['users.id as userId', 'devices.id as key']).where('users.username', '=', name).where('devices.device_id', '=', 1).executeTakeFirstOrThrow()
  const identity = newIdentity()
  const me = { id: Number(row.userId), username: name }
  t.equal((await setIdentityKey(app.db, me, identity.key, false)).outcome, 'set')
  const stored = await storeKeys(app.db, Number(row.key), identity.key, {
    preKeys: ids(0, ec).map(ecKey),
    signedPreKey: signedEcKey(identity, 1),
    pqPreKeys: ids(0, pq).map(id => kyberKey(identity, id)),
    pqLastResortPreKey: kyberKey(identity, 999)
  })
  t.equal(stored, 'stored')
  return { id: me.id, key: Number(row.key), identity, token }
}

t.test('concurrent claims of one device each get a different one-time key, then the last-resort key', async t => {
  const app = await build(t)
  const alice = await account(app, 'alice', 30, 30)
  const devices = await listBundleDevices(app.db, alice.id)
  t.same(devices.map(device => device.deviceId), [1])
  const results = await Promise.all(Array.from({ length: 40 }, async () => await claimBundles(app.db, alice.id, devices)))
  const ec = results.map(result => result.bundles[0]?.preKey?.keyId).filter(id => id !== undefined)
  const pq = results.map(result => result.bundles[0]?.pqPreKey.keyId)
  t.equal(ec.length, 30, '30 EC keys handed out, 10 claims without one')
  t.equal(new Set(ec).size, 30, 'no EC key twice')
  t.equal(new Set(pq.filter(id => id !== 999)).size, 30, 'no Kyber one-time key twice')
  t.equal(pq.filter(id => id === 999).length, 10, 'then the last-resort key')
  t.same(await countPrekeys(app.db, alice.key), { count: 0, pqCount: 0 })
  t.equal((await rowCounts(app)).claimed_prekeys, 60)
})

t.test('a claimed id uploaded again is not stored; an identity key other than the one checked stores nothing', async t => {
  const app = await build(t)
  const alice = await account(app, 'alice', 3, 0)
  await claimBundles(app.db, alice.id, await listBundleDevices(app.db, alice.id))
  t.equal(await storeKeys(app.db, alice.key, alice.identity.key, { preKeys: ids(0, 5).map(ecKey) }), 'stored')
  t.same(await countPrekeys(app.db, alice.key), { count: 4, pqCount: 0 }, 'id 0 was handed out: ids 1 to 4 stored')
  t.equal(await storeKeys(app.db, alice.key, newIdentity().key, { preKeys: ids(10, 5).map(ecKey) }), 'identity_changed')
  t.same(await countPrekeys(app.db, alice.key), { count: 4, pqCount: 0 })
  t.equal(await storeKeys(app.db, 987654, alice.identity.key, { preKeys: ids(10, 5).map(ecKey) }), 'device_gone')
})

t.test('without a registration id, a signed prekey or a last-resort key a device has no bundle', async t => {
  const app = await build(t)
  const alice = await account(app, 'alice', 1, 1)
  await deviceLogin(app, 'alice', { registrationId: 200 })
  t.same((await listBundleDevices(app.db, alice.id)).map(device => device.deviceId), [1])
  t.same(await listBundleDevices(app.db, alice.id, 2), [])
  await app.db.deleteFrom('signed_prekeys').where('device_key', '=', alice.key).where('kind', '=', 'kyber').execute()
  t.same(await listBundleDevices(app.db, alice.id), [], 'no last-resort key')
})

t.test('re-registering or removing a device, changing the identity key and deleting the account erase keys', async t => {
  const app = await build(t)
  const alice = await account(app, 'alice', 5, 5)
  await claimBundles(app.db, alice.id, await listBundleDevices(app.db, alice.id))
  const counts = async (): Promise<number[]> => {
    const all = await rowCounts(app)
    return [all.one_time_prekeys ?? -1, all.signed_prekeys ?? -1, all.claimed_prekeys ?? -1]
  }
  t.same(await counts(), [8, 2, 2])
  // device 1 registered again (an app reinstalled): a new device key, nothing of the old one's
  const token = await deviceLogin(app, 'alice', { id: 1, registrationId: 78 })
  t.same(await counts(), [0, 0, 0], 'a re-registered device starts without keys')

  const key = Number((await app.db.selectFrom('devices').select('id').where('user_id', '=', alice.id).where('device_id', '=', 1).executeTakeFirstOrThrow()).id)
  await storeKeys(app.db, key, alice.identity.key, { preKeys: ids(0, 2).map(ecKey) })
  await deviceLogin(app, 'alice', { registrationId: 300 })
  const secondKey = Number((await app.db.selectFrom('devices').select('id').where('user_id', '=', alice.id).where('device_id', '=', 2).executeTakeFirstOrThrow()).id)
  await storeKeys(app.db, secondKey, alice.identity.key, { preKeys: ids(0, 3).map(ecKey), signedPreKey: signedEcKey(alice.identity, 1) })
  t.same(await counts(), [5, 1, 0])
  t.equal((await call(app, token, { method: 'DELETE', url: '/v1/devices/2' })).statusCode, 200)
  t.same(await counts(), [2, 0, 0], 'a removed device\'s keys go')

  await storeKeys(app.db, key, alice.identity.key, { signedPreKey: signedEcKey(alice.identity, 1) })
  t.equal((await setIdentityKey(app.db, { id: alice.id, username: 'alice' }, newIdentity().key, false)).outcome, 'needs_password')
  t.same(await counts(), [2, 1, 0], 'refused: nothing deleted')
  t.equal((await setIdentityKey(app.db, { id: alice.id, username: 'alice' }, newIdentity().key, true)).outcome, 'changed')
  t.same(await counts(), [0, 0, 0], 'a new identity key: every prekey of the account goes')

  await storeKeys(app.db, key, (await app.db.selectFrom('users').select('identity_key').where('id', '=', alice.id).executeTakeFirstOrThrow()).identity_key ?? '', { preKeys: ids(0, 2).map(ecKey) })
  t.same(await counts(), [2, 0, 0])
  t.equal((await call(app, token, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })).statusCode, 200)
  t.same(await counts(), [0, 0, 0], 'a deleted account\'s keys go')
})

t.test('the migration goes down and up again', async t => {
  const app = await build(t)
  await account(app, 'alice', 2, 2)
  const { rows } = await sql<{ schema: string | null }>`select ${postgresUrl === undefined ? sql`null` : sql`current_schema()`} as schema`.execute(app.db)
  const migrator = new Migrator({ db: app.db, provider: migrationProvider, migrationTableSchema: rows[0]?.schema ?? undefined })
  const down = await migrator.migrateTo('2026-11-30-0006-devices')
  t.equal(down.error, undefined)
  // later migrations go down first; the last two are the ones this test is about
  t.same(down.results?.map(result => [result.migrationName, result.direction, result.status]).slice(-2), [['2026-11-30-0008-envelopes', 'Down', 'Success'], ['2026-11-30-0007-prekeys', 'Down', 'Success']])
  t.ok(down.results?.every(result => result.direction === 'Down' && result.status === 'Success'), 'every later migration went down')
  await t.rejects(app.db.selectFrom('one_time_prekeys').selectAll().execute(), 'the tables are gone')
  await t.rejects(app.db.selectFrom('users').select('identity_key').execute(), 'and the column')
  const up = await migrator.migrateToLatest()
  t.equal(up.error, undefined)
  t.same((await listBundleDevices(app.db, 1)), [], 'the tables are back, empty')
})

t.test('claims, uploads and an identity change at once: no deadlock, no error, no key twice', async t => {
  const app = await build(t)
  const alice = await account(app, 'alice', 50, 50)
  const devices = await listBundleDevices(app.db, alice.id)
  const me = { id: alice.id, username: 'alice' }
  const next = newIdentity()
  const work: Array<Promise<unknown>> = []
  for (let i = 0; i < 30; i++) {
    work.push(claimBundles(app.db, alice.id, devices))
    if (i % 6 === 0) work.push(storeKeys(app.db, alice.key, alice.identity.key, { preKeys: ids(1000 + i * 10, 10).map(ecKey), pqPreKeys: ids(1000 + i * 10, 10).map(id => kyberKey(alice.identity, id)) }))
    if (i === 15) work.push(setIdentityKey(app.db, me, next.key, true))
  }
  const results = await Promise.allSettled(work)
  t.same(results.filter(result => result.status === 'rejected'), [], 'every transaction went through')
  const handedOut = results.flatMap(result => result.status === 'fulfilled' && typeof result.value === 'object' && result.value !== null && 'bundles' in result.value
    ? (result.value as Awaited<ReturnType<typeof claimBundles>>).bundles.flatMap(bundle => bundle.preKey === undefined ? [] : [bundle.preKey.keyId])
    : [])
  t.equal(new Set(handedOut).size, handedOut.length, 'no EC key handed out twice')
})
