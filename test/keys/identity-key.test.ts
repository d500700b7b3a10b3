import t from 'tap'
import { PASSWORD, befriend, build, call, isError, rowCounts, snapshot, user } from '../helper.js'
import { sync } from '../realtime-helper.js'
import { b64, deviceLogin, newIdentity, publishKeys } from '../fixtures/prekeys.js'

const putIdentity = (payload: unknown): { method: 'PUT', url: string, payload: any } => ({ method: 'PUT', url: '/v1/keys/identity', payload: payload as any })

t.test('a first identity key and the same key again need no password and tell nobody', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  const identity = newIdentity()
  let res = await call(app, alice, putIdentity({ identityKey: identity.key }))
  t.equal(res.statusCode, 200)
  t.equal(res.json().message, 'Identity key set.')
  res = await call(app, alice, putIdentity({ identityKey: identity.key }))
  t.equal(res.statusCode, 200)
  t.equal(res.json().message, 'Identity key unchanged.')
  t.same((await sync(t, app, bob)).events.filter(event => event.type === 'key_changed'), [])
})

t.test('bad identity keys are 400s naming identityKey, and change nothing', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const key = Buffer.from(newIdentity().pair.publicKey.serialize())
  const before = await snapshot(app)
  const bad: unknown[] = [
    {}, { identityKey: '' }, { identityKey: null }, { identityKey: 5 }, { identityKey: [key.toString('base64')] },
    { identityKey: key.subarray(0, 32).toString('base64') }, // 32 bytes
    { identityKey: b64(Buffer.concat([key, Buffer.from([0])])) }, // 34 bytes
    { identityKey: b64(Buffer.concat([Buffer.from([0x08]), key.subarray(1)])) }, // not an EC key
    { identityKey: key.toString('hex') },
    { identityKey: ` ${key.toString('base64')}` },
    { identityKey: `${key.toString('base64').slice(0, 43)}=` }
  ]
  for (const payload of bad) {
    const res = await call(app, alice, putIdentity(payload))
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /identityKey/, JSON.stringify(payload).slice(0, 60))
  }
  // bytes that spell + and / in standard base64: their url-safe spelling is refused
  const urlSafe = b64(Buffer.concat([Buffer.from([0x05, 0xfb, 0xff]), key.subarray(3)])).replace(/\+/g, '-').replace(/\//g, '_')
  t.match(urlSafe, /[-_]/)
  isError(t, await call(app, alice, putIdentity({ identityKey: urlSafe })), 400, 'VALIDATION_ERROR')
  t.same(await snapshot(app), before)
})

t.test('changing it needs the password, deletes every prekey of every device, and tells each contact', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const carol = await user(app, 'carol')
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  const identity = await publishKeys(app, alice)
  // a second device, its keys signed by the same identity key
  await publishKeys(app, await deviceLogin(app, 'alice', { registrationId: 2 }), { ec: 3, pq: 3 }, identity)
  t.equal((await rowCounts(app)).one_time_prekeys, 16, 'two devices\' keys')
  const next = newIdentity()

  const before = await snapshot(app)
  let res = await call(app, alice, putIdentity({ identityKey: next.key }))
  isError(t, res, 400, 'VALIDATION_ERROR')
  t.match(res.json().message, /password/)
  isError(t, await call(app, alice, putIdentity({ identityKey: next.key, password: 'not the password' })), 403, 'WRONG_PASSWORD')
  isError(t, await call(app, alice, putIdentity({ identityKey: next.key, password: '' })), 400, 'VALIDATION_ERROR')
  t.same(await snapshot(app), before, 'nothing changed')

  res = await call(app, alice, putIdentity({ identityKey: next.key, password: PASSWORD }))
  t.equal(res.statusCode, 200, res.body)
  t.match(res.json().message, /changed/)
  const counts = await rowCounts(app)
  t.equal(counts.one_time_prekeys, 0, 'one-time keys deleted, of both devices')
  t.equal(counts.signed_prekeys, 0, 'signed and last-resort keys deleted')
  t.match((await sync(t, app, bob)).events.filter(event => event.type === 'key_changed'), [{ type: 'key_changed', username: 'alice' }])
  t.same((await sync(t, app, carol)).events.filter(event => event.type === 'key_changed'), [], 'not a contact: not told')
  t.same((await sync(t, app, alice)).events.filter(event => event.type === 'key_changed'), [], 'nor the account itself')
  const count = await call(app, alice, { method: 'GET', url: '/v1/keys' })
  t.same(count.json(), { count: 0, pqCount: 0 })
})

t.test('identity changes are limited with the key changes of upload_key', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_UPLOAD_KEY: '1/hour' })
  const alice = await user(app, 'alice')
  t.equal((await call(app, alice, putIdentity({ identityKey: newIdentity().key }))).statusCode, 200, 'a first key is no change')
  t.equal((await call(app, alice, putIdentity({ identityKey: newIdentity().key, password: PASSWORD }))).statusCode, 200)
  const res = await call(app, alice, putIdentity({ identityKey: newIdentity().key, password: PASSWORD }))
  isError(t, res, 429, 'RATE_LIMITED')
  t.ok(Number(res.headers['retry-after']) > 0)
})
