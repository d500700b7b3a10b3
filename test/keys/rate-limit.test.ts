import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { befriend, build, call, isError, snapshot, user } from '../helper.js'
import { deviceLogin, publishKeys } from '../fixtures/prekeys.js'
import { PrivateRedis, hasRedisServer, until } from '../processes.js'

// RATE_LIMIT_PREKEYS: bundle fetches per (requesting account, target device), a leaky bucket
// (a burst, then one back per interval), so that nobody drains another's one-time keys. With
// REDIS_URL (the PostgreSQL + Redis run) the buckets are Redis's.

t.test('a burst, then one per interval; per requester and per target device; a refusal claims nothing', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_PREKEYS: '3/2s' })
  await user(app, 'alice')
  const bob = await user(app, 'bob')
  const carol = await user(app, 'carol')
  const alice = await deviceLogin(app, 'alice', { id: 1, registrationId: 101 })
  const second = await deviceLogin(app, 'alice', { registrationId: 202 })
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  await befriend(app, { name: 'alice', token: alice }, { name: 'carol', token: carol })
  const identity = await publishKeys(app, alice, { ec: 30, pq: 30 })
  await publishKeys(app, second, { ec: 30, pq: 30 }, identity)
  const fetch = async (token: string, path: string): Promise<number> => (await call(app, token, { method: 'GET', url: `/v1/keys/${path}` })).statusCode

  for (let i = 0; i < 3; i++) t.equal(await fetch(bob, 'alice/1'), 200, `burst ${i + 1}`)
  const before = await snapshot(app)
  const refused = await call(app, bob, { method: 'GET', url: '/v1/keys/alice/1' })
  isError(t, refused, 429, 'RATE_LIMITED')
  t.match(refused.json().message, /prekey bundle fetches/)
  const retry = Number(refused.headers['retry-after'])
  t.ok(retry >= 1 && retry <= 2, `retry-after ${retry}`)
  t.same(await snapshot(app), before, 'a refused fetch claims no key')
  isError(t, await call(app, bob, { method: 'GET', url: '/v1/keys/alice/*' }), 429, 'RATE_LIMITED')
  t.same(await snapshot(app), before, '* with one empty bucket claims nothing, on no device')

  t.equal(await fetch(bob, 'alice/2'), 200, 'another device of the same account has its own bucket')
  t.equal(await fetch(carol, 'alice/1'), 200, 'another requester has its own bucket')

  await sleep(2100)
  t.equal(await fetch(bob, 'ALICE/1'), 200, 'one back after the interval (the name in any case)')
  t.equal(await fetch(bob, 'alice/1'), 429, 'only one')
})

t.test('RATE_LIMIT=off lifts it', async t => {
  const app = await build(t, { RATE_LIMIT_PREKEYS: '1/1h' })
  await user(app, 'alice')
  const bob = await user(app, 'bob')
  const alice = await deviceLogin(app, 'alice', { id: 1, registrationId: 101 })
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  await publishKeys(app, alice)
  for (let i = 0; i < 5; i++) t.equal((await call(app, bob, { method: 'GET', url: '/v1/keys/alice/1' })).statusCode, 200)
})

t.test('while Redis is down fetches go through (fail open), and once it is back the buckets are Redis\'s again', { skip: !hasRedisServer && 'no redis-server' }, async t => {
  const redis = await PrivateRedis.start()
  t.teardown(async () => { await redis.stop() })
  const app = await build(t, { REDIS_URL: redis.url, RATE_LIMIT: 'on', RATE_LIMIT_PREKEYS: '1/1h' })
  await user(app, 'alice')
  const bob = await user(app, 'bob')
  const alice = await deviceLogin(app, 'alice', { id: 1, registrationId: 101 })
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  await publishKeys(app, alice)
  const fetch = async (): Promise<number> => (await call(app, bob, { method: 'GET', url: '/v1/keys/alice/1' })).statusCode
  t.same([await fetch(), await fetch()], [200, 429], 'enforced through Redis')
  await redis.stop()
  t.same([await fetch(), await fetch()], [200, 200], 'open, not a 500')
  await redis.start()
  await until(async () => await fetch() === 429, 'the bucket is Redis\'s again (the restarted one is empty: one fetch, then 429)')
})
