import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { befriend, build, call, isError, rowCounts, snapshot, user } from '../helper.js'
import { sync } from '../realtime-helper.js'
import { deviceLogin, ecKey, ids, kyberKey, publishKeys, type Identity } from '../fixtures/prekeys.js'

const fetch = (path: string): { method: 'GET', url: string } => ({ method: 'GET', url: `/v1/keys/${path}` })

/** alice (device 1 registered, keys published) and bob, contacts; their tokens. */
async function contacts (app: FastifyInstance, counts: { ec?: number, pq?: number } = {}): Promise<{ alice: string, bob: string, identity: Identity }> {
  await user(app, 'alice')
  const bob = await user(app, 'bob')
  const alice = await deviceLogin(app, 'alice', { id: 1, registrationId: 101 })
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  const identity = await publishKeys(app, alice, counts)
  return { alice, bob, identity }
}

t.test('a contact claims a bundle: each one-time key once, then the last-resort Kyber key and no preKey', async t => {
  const app = await build(t)
  const { alice, bob } = await contacts(app, { ec: 2, pq: 2 })
  const identityKey = (await app.db.selectFrom('users').select('identity_key').where('username', '=', 'alice').executeTakeFirstOrThrow()).identity_key
  const seen: unknown[] = []
  for (let i = 0; i < 3; i++) {
    const res = await call(app, bob, fetch('alice/1'))
    t.equal(res.statusCode, 200, res.body)
    const body = res.json()
    t.equal(body.identityKey, identityKey)
    t.equal(body.devices.length, 1)
    const [device] = body.devices
    t.equal(device.deviceId, 1)
    t.equal(device.registrationId, 101)
    t.equal(device.signedPreKey.keyId, 7000)
    seen.push([device.preKey?.keyId, device.pqPreKey.keyId])
  }
  t.same(seen, [[1, 1], [2, 2], [undefined, 9000]], 'one-time keys in turn, then none (EC) and the last-resort key (Kyber)')
  const last = (await call(app, bob, fetch('alice/*'))).json().devices[0]
  t.notOk('preKey' in last, 'preKey absent, not null')
  t.equal(last.pqPreKey.keyId, 9000, 'the last-resort key is never used up')
  t.same((await call(app, alice, { method: 'GET', url: '/v1/keys' })).json(), { count: 0, pqCount: 0 })
  t.equal((await rowCounts(app)).claimed_prekeys, 4, 'the ids handed out are remembered')
})

t.test('concurrent fetches of one device get different one-time keys', async t => {
  const app = await build(t)
  const { bob } = await contacts(app, { ec: 25, pq: 25 })
  const answers = await Promise.all(Array.from({ length: 30 }, async () => await call(app, bob, fetch('alice/1'))))
  t.ok(answers.every(res => res.statusCode === 200))
  const devices = answers.map(res => res.json().devices[0])
  const ec = devices.flatMap(device => device.preKey === undefined ? [] : [device.preKey.keyId])
  const pq = devices.map(device => device.pqPreKey.keyId)
  t.equal(ec.length, 25)
  t.equal(new Set(ec).size, 25, 'no EC key twice')
  t.equal(new Set(pq.filter(id => id !== 9000)).size, 25, 'no Kyber one-time key twice')
  t.equal(pq.filter(id => id === 9000).length, 5, 'the last-resort key for the rest')
})

t.test('an id already handed out is never handed out again, even uploaded again', async t => {
  const app = await build(t)
  const { alice, bob, identity } = await contacts(app, { ec: 2, pq: 2 })
  t.equal((await call(app, bob, fetch('alice/1'))).json().devices[0].preKey.keyId, 1)
  // the same ids again, as a client retrying an upload would
  const res = await call(app, alice, { method: 'PUT', url: '/v1/keys', payload: { preKeys: ids(1, 3).map(ecKey), pqPreKeys: ids(1, 3).map(id => kyberKey(identity, id)) } })
  t.equal(res.statusCode, 200)
  t.same((await call(app, alice, { method: 'GET', url: '/v1/keys' })).json(), { count: 2, pqCount: 2 }, 'ids 2 and 3 only')
  const got = []
  for (let i = 0; i < 3; i++) got.push((await call(app, bob, fetch('alice/1'))).json().devices[0].preKey?.keyId)
  t.same(got, [2, 3, undefined])
})

t.test('* gives every device that has a bundle; a device without one is left out, asked by number a 404', async t => {
  const app = await build(t)
  const { bob, identity } = await contacts(app)
  const second = await deviceLogin(app, 'alice', { registrationId: 202, name: 'laptop' })
  await deviceLogin(app, 'alice', { registrationId: 303 }) // device 3: registered, no keys
  const devices = async (): Promise<number[]> => (await call(app, bob, fetch('alice/*'))).json().devices.map((device: { deviceId: number }) => device.deviceId)
  t.same(await devices(), [1], 'devices 2 and 3 have no keys yet')
  // the account's identity key (set by device 1) signs device 2's keys too
  await publishKeys(app, second, { ec: 1, pq: 1 }, identity)
  const res = await call(app, bob, fetch('alice/*'))
  t.equal(res.statusCode, 200)
  t.match(res.json().devices, [{ deviceId: 1, registrationId: 101 }, { deviceId: 2, registrationId: 202, preKey: { keyId: 1 }, pqPreKey: { keyId: 1 } }])
  t.same(await devices(), [1, 2])
  const own = await call(app, second, fetch('alice/1'))
  t.equal(own.statusCode, 200, 'the account fetches its own devices\' bundles (to encrypt for them too)')
  isError(t, await call(app, bob, fetch('alice/3')), 404, 'NO_PREKEYS')
  isError(t, await call(app, bob, fetch('alice/9')), 404, 'NO_PREKEYS')
})

t.test('only accepted contacts fetch; a block answers as a stranger is answered; bad params are 400s', async t => {
  const app = await build(t)
  await contacts(app)
  const carol = await user(app, 'carol')
  const dave = await user(app, 'dave')
  await call(app, carol, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  const alice = await deviceLogin(app, 'alice', { id: 1, registrationId: 101 })
  await befriend(app, { name: 'dave', token: dave }, { name: 'alice', token: alice })
  await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'dave' } })
  const before = await snapshot(app)
  const pending = await call(app, carol, fetch('alice/1'))
  const blocked = await call(app, dave, fetch('alice/1'))
  isError(t, pending, 403, 'NOT_A_CONTACT')
  isError(t, blocked, 403, 'NOT_A_CONTACT')
  t.equal(blocked.body, pending.body, 'the blocked user reads what a stranger reads')
  isError(t, await call(app, carol, fetch('nobody/1')), 404, 'USER_NOT_FOUND')
  for (const path of ['alice/0', 'alice/128', 'alice/01', 'alice/x', 'alice/1.5', 'alice/-1', 'alice/**', 'a/1', `${'a'.repeat(33)}/1`]) {
    const res = await call(app, carol, fetch(path))
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /params\/(deviceId|username)/, path)
  }
  t.same(await snapshot(app), before, 'no key claimed')
})

t.test('a claim that leaves fewer than 10 of either kind sends prekeys_low to that device only', async t => {
  const app = await build(t)
  const { alice, bob } = await contacts(app, { ec: 11, pq: 20 })
  const second = await deviceLogin(app, 'alice', { registrationId: 202 })
  const low = async (token: string): Promise<unknown[]> => (await sync(t, app, token)).events.filter(event => event.type === 'prekeys_low')
  await call(app, bob, fetch('alice/1'))
  t.same(await low(alice), [], '10 and 19 left: not low')
  await call(app, bob, fetch('alice/1'))
  t.match(await low(alice), [{ type: 'prekeys_low', count: 9, pqCount: 18 }])
  t.same(await low(second), [], 'not the account\'s other device')
  t.same(await low(bob), [], 'nor the requester')
})
