import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildApp } from '../../app.js'
import type { RedisHub } from '../../plugins/app/redis-hub.js'
import { admin, tempDir } from '../fixtures/admin.js'
import { PASSWORD, bearer, befriend, build, call, capturedLogs, freshDatabaseEnv, login, postgresUrl, redisUrl, testConfig, user } from '../helper.js'
import { hasRedisServer, PrivateRedis } from '../processes.js'
import { Client, eventually, hub, idOf, listen, send, sync, type Person } from '../realtime-helper.js'

// Two app instances on one PostgreSQL schema, each with its own Redis hub (nothing shared
// in this process but the database and Redis): what reaches a socket or a long-poll on A
// when something happens through B.

const skip = postgresUrl === undefined || redisUrl === undefined ? 'needs DATABASE_URL (PostgreSQL) and REDIS_URL' : false

/** The env two instances of one service share: the database schema, Redis and its prefix. */
async function serviceEnv (t: Test, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    ...await freshDatabaseEnv(t),
    JWT_SECRET: randomBytes(32).toString('base64'),
    REDIS_URL: redisUrl ?? '',
    REDIS_PREFIX: `test-${randomBytes(6).toString('hex')}:`,
    ...extra
  }
}

async function two (t: Test, extra: Record<string, string> = {}): Promise<{ env: Record<string, string>, a: FastifyInstance, b: FastifyInstance }> {
  const env = await serviceEnv(t, extra)
  const a = await build(t, env)
  const b = await build(t, env)
  return { env, a, b }
}

/** Alice and Bob, contacts, their tokens from instance `app`. */
async function people (app: FastifyInstance): Promise<[Person, Person]> {
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  return [alice, bob]
}

async function ended (t: Test, client: Client, code = 'SESSION_ENDED'): Promise<void> {
  t.match(await client.next(), { type: 'error', code })
  t.same(await client.closed, { code: 4401, reason: code })
}

/** How many subscribers Redis has for the user's channel, over all instances. */
async function subscribers (env: Record<string, string>, userId: number): Promise<number> {
  const redis = new Redis(env.REDIS_URL!)
  try {
    const reply = await redis.call('PUBSUB', 'SHARDNUMSUB', `${env.REDIS_PREFIX!}user:${userId}`) as [string, number]
    return Number(reply[1])
  } finally {
    await redis.quit()
  }
}

t.test('a socket and a long-poll on A get what is sent through B; A subscribes only while someone listens', { skip }, async t => {
  const { env, a, b } = await two(t)
  t.equal(a.hub.state, 'connected')
  t.same((await b.inject({ url: '/readyz' })).json(), { status: 'ready', hub: 'connected' })
  const [alice, bob] = await people(a)
  const bobId = await idOf(a, 'bob')
  t.equal(await subscribers(env, bobId), 0, 'nobody listens for bob yet')

  const socket = await Client.open(await listen(a), bob.token)
  await socket.until('ready')
  t.equal(await subscribers(env, bobId), 1, 'A subscribed for bob, B did not')
  await send(b, alice, bob)
  t.match(await socket.next(), { type: 'message', message: { sender_username: 'alice' } }, 'pushed across instances')

  const since = (await sync(t, a, bob.token)).next
  const poll = call(a, bob.token, { method: 'GET', url: '/sync', query: { since, timeout: '30' } })
  await eventually(() => hub(a).listenerCount(bobId) === 2)
  await send(b, alice, bob)
  const polled = await poll
  t.equal(polled.statusCode, 200)
  t.match(polled.json().events, [{ type: 'message' }], 'the long-poll woke for it')
  t.match(await socket.next(), { type: 'message' })

  await socket.close()
  await eventually(async () => await subscribers(env, bobId) === 0)
  t.equal((a.hub as RedisHub).subscribedUsers, 0, 'A let the channel go with its last listener')
})

t.test('100 messages sent alternately through A and B arrive on one socket on A, in order, none missing', { skip }, async t => {
  const { a, b } = await two(t)
  const [alice, bob] = await people(a)
  const socket = await Client.open(await listen(a), bob.token)
  await socket.until('ready')
  const ids: number[] = []
  for (let i = 0; i < 100; i++) ids.push((await send(i % 2 === 0 ? a : b, alice, bob)).json().id)
  const frames = await socket.take(100)
  t.same(frames.map(frame => frame.type === 'message' ? frame.message.id : frame.type), ids)
  await socket.close()
})

t.test('logout, a password change and an operator (web console or CLI) through B end sessions on A', { skip }, async t => {
  const adminToken = randomBytes(32).toString('base64url')
  const { env, a, b } = await two(t, { ADMIN_TOKEN: adminToken })
  const base = await listen(a)
  const alice = await user(a, 'alice')

  // logout through B: A's socket and long-poll of that session end
  const socket = await Client.open(base, alice)
  await socket.until('ready')
  const aliceId = await idOf(a, 'alice')
  const poll = call(a, alice, { method: 'GET', url: '/sync', query: { since: (await sync(t, a, alice)).next, timeout: '30' } })
  await eventually(() => hub(a).listenerCount(aliceId) === 2)
  t.equal((await call(b, alice, { method: 'POST', url: '/logout' })).statusCode, 200)
  await ended(t, socket)
  t.equal((await poll).json().code, 'TOKEN_REVOKED')

  // a password change through B
  const second = await login(a, 'alice')
  const socket2 = await Client.open(base, second)
  await socket2.until('ready')
  const changed = await call(b, second, { method: 'POST', url: '/change_password', payload: { old_password: PASSWORD, new_password: 'another horse battery' } })
  t.equal(changed.statusCode, 200)
  await ended(t, socket2)

  // the web console of B disables alice; her socket on A closes
  const socket3 = await Client.open(base, changed.json().token)
  await socket3.until('ready')
  t.match((await b.inject({ method: 'POST', url: '/admin/api/users/alice/disable', headers: bearer(adminToken) })).json(), { changed: true })
  await ended(t, socket3)

  // the admin CLI, another process (here: in-process, with the same settings): not at the next ping (30 s) but at once
  const carol = await user(b, 'carol')
  const socket4 = await Client.open(base, carol)
  await socket4.until('ready')
  const cli = await admin(env, 'disable-user', 'carol')
  t.equal(cli.code, 0, cli.err)
  await ended(t, socket4)
  const dave = await user(b, 'dave')
  const socket5 = await Client.open(base, dave)
  await socket5.until('ready')
  t.equal((await admin(env, 'delete-user', 'dave', '--yes')).code, 0)
  await ended(t, socket5)
})

t.test('a long-poll whose hint was lost still answers with the event at its timeout (the final read)', async t => {
  // two instances on one database with in-process hubs: B's send never wakes A
  const env = {
    ...postgresUrl === undefined ? { DATABASE_URL: `sqlite:${tempDir(t)}/shared.db` } : await freshDatabaseEnv(t),
    JWT_SECRET: randomBytes(32).toString('base64')
  }
  const a = await build(t, { ...env, REDIS_URL: '' })
  const b = await build(t, { ...env, REDIS_URL: '' })
  t.equal(a.hub.state, 'local')
  const [alice, bob] = await people(a)
  const since = (await sync(t, a, bob.token)).next
  const poll = call(a, bob.token, { method: 'GET', url: '/sync', query: { since, timeout: '2' } })
  await eventually(async () => hub(a).listenerCount(await idOf(a, 'bob')) === 1)
  await send(b, alice, bob)
  const polled = await poll
  t.equal(polled.statusCode, 200)
  t.match(polled.json().events, [{ type: 'message', message: { sender_username: 'alice' } }])
})

t.test('Redis down: delivery goes on by polling, /readyz says degraded, one warning; back: pushes again', { skip: skip || (hasRedisServer ? false : 'redis-server is not installed') }, async t => {
  const redis = await PrivateRedis.start()
  t.teardown(async () => { await redis.stop() })
  const env = await serviceEnv(t, { REDIS_URL: redis.url })
  const config = await testConfig(t, env)
  const { logger, lines } = capturedLogs({ ...config, logLevel: 'info' })
  const a = await buildApp(config, { logger })
  t.teardown(async () => { await a.close() })
  const b = await build(t, env)
  const [alice, bob] = await people(a)
  const socket = await Client.open(await listen(a), bob.token)
  await socket.until('ready')
  await send(b, alice, bob)
  t.match(await socket.next(), { type: 'message' })

  await redis.stop()
  await eventually(async () => (await a.inject({ url: '/readyz' })).json().hub === 'degraded')
  const ready = await a.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200, 'still ready: the database is the truth')
  const sent: number[] = []
  for (let i = 0; i < 3; i++) sent.push((await send(b, alice, bob)).json().id)
  const during = await socket.take(3)
  t.same(during.map(frame => frame.type === 'message' && frame.message.id), sent, 'delivered by the fallback poll')
  // a later session end through B cannot cross, but a new socket on A still works
  const warnings = lines.filter(line => line.level === 40 && /Redis unreachable/.test(line.msg))
  t.equal(warnings.length, 1, 'one warning for the outage')

  await redis.start()
  await eventually(async () => (await a.inject({ url: '/readyz' })).json().hub === 'connected')
  await eventually(() => b.hub.state === 'connected')
  const after = (await send(b, alice, bob)).json().id
  t.match(await socket.next(), { type: 'message', message: { id: after } }, 'pushed again after the outage')
  t.equal(lines.filter(line => /Redis unreachable/.test(line.msg)).length, 1, 'still one warning')
  t.ok(lines.some(line => /Redis is back/.test(line.msg)), 'the recovery is logged')
  await socket.close()
})

t.test('a Redis that keeps its connections but stops answering is an outage too', { skip: skip || (hasRedisServer ? false : 'redis-server is not installed') }, async t => {
  const redis = await PrivateRedis.start()
  t.teardown(async () => { await redis.stop() })
  const env = await serviceEnv(t, { REDIS_URL: redis.url })
  const a = await build(t, env)
  const b = await build(t, env)
  const [alice, bob] = await people(a)
  const socket = await Client.open(await listen(a), bob.token)
  await socket.until('ready')

  redis.freeze()
  let frozen = true
  t.teardown(() => { if (frozen) redis.thaw() })
  await eventually(() => a.hub.state === 'degraded') // its heartbeat PING timed out
  const during = (await send(b, alice, bob)).json().id
  t.match(await socket.next(), { type: 'message', message: { id: during } }, 'delivered by the fallback poll')

  redis.thaw()
  frozen = false
  await eventually(() => a.hub.state === 'connected' && b.hub.state === 'connected')
  const after = (await send(b, alice, bob)).json().id
  t.match(await socket.next(), { type: 'message', message: { id: after } }, 'pushed again')
  await socket.close()
})
