import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../../app.js'
import { loadConfig } from '../../config.js'
import { PASSWORD, befriend, call, freshDatabaseEnv, isError, postgresUrl, redisUrl, register, user } from '../helper.js'
import { deviceLogin, publishKeys } from '../fixtures/prekeys.js'

// With REDIS_URL every limit, per IP and per account, is one budget for all instances, and
// restarting an instance does not hand out a fresh one. Two instances on one database (a
// PostgreSQL schema, or a SQLite file) and the machine's Redis (.ci/run sets REDIS_URL), in a
// REDIS_PREFIX of their own, as the helper gives each app.

const skip = redisUrl === undefined ? 'REDIS_URL is not set' : false
const HIGH = '1000/hour'

interface Service {
  apps: FastifyInstance[]
  /** Closes instance i and builds it again. */
  restart: (i: number) => Promise<FastifyInstance>
  /** Another instance, on the same database and Redis, with some settings changed. */
  start: (changed?: Record<string, string>) => Promise<FastifyInstance>
}

/** One service of two instances. */
async function service (t: Test, limits: Record<string, string>): Promise<Service> {
  let database = postgresUrl === undefined ? undefined : await freshDatabaseEnv(t)
  if (database === undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'limits-'))
    t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
    database = { DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}` }
  }
  const env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    JWT_SECRET: randomBytes(32).toString('base64'), // a token from one instance is valid on the other
    REDIS_URL: redisUrl ?? '',
    REDIS_PREFIX: `test-${randomBytes(6).toString('hex')}:`,
    RATE_LIMIT: 'on',
    ...Object.fromEntries(['REGISTER', 'LOGIN', 'REQUEST_CHAT', 'ACCEPT_CHAT', 'SEND_MESSAGE', 'SEND_MESSAGE_SENDER', 'SEND_MESSAGE_PAIR', 'LOGIN_FAILURES', 'LOGIN_FAILURES_ACCOUNT', 'SESSION_PASSWORD_FAILURES'].map(name => [`RATE_LIMIT_${name}`, HIGH])),
    ...database,
    ...limits
  }
  const open = new Set<FastifyInstance>()
  t.teardown(async () => { for (const app of open) await app.close() })
  const start = async (changed: Record<string, string> = {}): Promise<FastifyInstance> => {
    const app = await buildApp(loadConfig({ ...env, ...changed }))
    open.add(app)
    return app
  }
  const apps = [await start(), await start()]
  const restart = async (i: number): Promise<FastifyInstance> => {
    const app = apps[i]
    if (app === undefined) throw new Error(`no instance ${i}`)
    open.delete(app)
    await app.close()
    return (apps[i] = await start())
  }
  return { apps, restart, start }
}

/** A 429 RATE_LIMITED, said as `what`. */
function limited (t: Test, res: LightMyRequestResponse, what: string): void {
  t.equal(res.statusCode, 429, what)
  isError(t, res, 429, 'RATE_LIMITED')
}

const fresh = (): string => `u${randomBytes(6).toString('hex')}`
const freshIp = (): string => `10.${[...randomBytes(3)].join('.')}`

t.test('a per-IP limit is one budget across instances and survives a restart', { skip }, async t => {
  const { apps, restart, start } = await service(t, { RATE_LIMIT_LOGIN: '3/hour' })
  const ip = freshIp()
  const [one, two] = apps as [FastifyInstance, FastifyInstance]
  const login = async (app: FastifyInstance, from = ip): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'POST', url: '/login', payload: { username: fresh(), password: 'whatever1' }, remoteAddress: from })
  t.equal((await login(one)).statusCode, 401)
  t.equal((await login(two)).statusCode, 401)
  t.equal((await login(one)).statusCode, 401)
  const refused = await login(two)
  limited(t, refused, 'the second instance does not grant a fresh budget')
  t.equal(refused.headers['x-ratelimit-limit'], '3')
  const restarted = await restart(1)
  limited(t, await login(restarted), 'nor does a restarted one')
  t.equal((await login(restarted, freshIp())).statusCode, 401, 'another address has its own budget')
  const otherService = await start({ REDIS_PREFIX: `test-${randomBytes(6).toString('hex')}:` })
  t.equal((await login(otherService)).statusCode, 401, 'another service on the same Redis (another REDIS_PREFIX) counts apart')
})

t.test('failed password checks on one instance count on the other, and a restart keeps the count', { skip }, async t => {
  const { apps, restart } = await service(t, { RATE_LIMIT_LOGIN_FAILURES: '3/hour' })
  const [one, two] = apps as [FastifyInstance, FastifyInstance]
  const name = fresh()
  t.equal((await register(one, name)).statusCode, 201)
  // failures count per account and address: one attacker's address throughout
  const ip = freshIp()
  const attempt = async (app: FastifyInstance, password: string): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'POST', url: '/login', payload: { username: name, password }, remoteAddress: ip })
  isError(t, await attempt(one, 'wrong password'), 401, 'INVALID_CREDENTIALS')
  isError(t, await attempt(two, 'wrong password'), 401, 'INVALID_CREDENTIALS')
  isError(t, await attempt(one, 'wrong password'), 401, 'INVALID_CREDENTIALS')
  const refused = await attempt(two, PASSWORD)
  limited(t, refused, 'the second instance does not grant a fresh budget')
  t.match(refused.json().message, /failed password attempts/)
  limited(t, await attempt(await restart(0), PASSWORD), 'nor does a restarted one')
  const other = fresh()
  t.equal((await register(two, other)).statusCode, 201)
  t.equal((await two.inject({ method: 'POST', url: '/login', payload: { username: other, password: PASSWORD } })).statusCode, 200, 'another account is not affected')
})

t.test('the per-sender and per-pair message limits are one budget across instances and survive a restart', { skip }, async t => {
  const { apps, restart } = await service(t, { RATE_LIMIT_SEND_MESSAGE_SENDER: '4/hour', RATE_LIMIT_SEND_MESSAGE_PAIR: '2/hour' })
  // a message refused by the pair limit has counted against the sender's budget (checked first)
  const [one, two] = apps as [FastifyInstance, FastifyInstance]
  const [alice, bob, carol] = [fresh(), fresh(), fresh()]
  const sender = { name: alice, token: await user(one, alice) }
  await befriend(one, sender, { name: bob, token: await user(one, bob) })
  await befriend(two, sender, { name: carol, token: await user(two, carol) })
  const send = async (app: FastifyInstance, to: string): Promise<LightMyRequestResponse> => {
    const options: InjectOptions = { method: 'POST', url: '/send_message', payload: { recipient_username: to, sender_blob: 's', recipient_blob: 'r' }, remoteAddress: freshIp() }
    return await call(app, sender.token, options)
  }
  t.equal((await send(one, bob)).statusCode, 201)
  t.equal((await send(two, bob.toUpperCase())).statusCode, 201)
  const pair = await send(one, bob)
  limited(t, pair, 'the pair limit counts what the other instance sent')
  t.match(pair.json().message, /recipient/)
  t.equal((await send(two, carol)).statusCode, 201, 'another recipient has its own pair budget')
  const senderLimited = await send(one, carol)
  limited(t, senderLimited, 'the sender limit counts both instances')
  t.match(senderLimited.json().message, /messages/)
  limited(t, await send(await restart(1), carol), 'a restarted instance keeps the count')
})

t.test('key changes, lookups and wrong admin tokens are one budget across instances', { skip }, async t => {
  const ADMIN_TOKEN = randomBytes(32).toString('base64url')
  const { apps } = await service(t, { RATE_LIMIT_UPLOAD_KEY: '2/hour', RATE_LIMIT_LOOKUPS: '2/hour', RATE_LIMIT_ADMIN_FAILURES: '2/hour', ADMIN_TOKEN })
  const [one, two] = apps as [FastifyInstance, FastifyInstance]
  const name = fresh()
  const token = await user(one, name)
  const upload = async (app: FastifyInstance, key: string): Promise<LightMyRequestResponse> => await call(app, token, { method: 'POST', url: '/upload_key', payload: { public_key: key } })
  t.equal((await upload(one, 'k0')).statusCode, 200, 'a first key')
  t.equal((await upload(two, 'k1')).statusCode, 200)
  t.equal((await upload(one, 'k2')).statusCode, 200)
  limited(t, await upload(two, 'k3'), 'the second instance counts the first one\'s key changes')

  const lookup = async (app: FastifyInstance, other: string): Promise<LightMyRequestResponse> => await call(app, token, { method: 'GET', url: '/get_key', query: { username: other } })
  t.equal((await lookup(one, fresh())).statusCode, 404)
  t.equal((await lookup(two, fresh())).statusCode, 404)
  limited(t, await lookup(one, fresh()), 'lookups on both instances count together')

  const ip = freshIp()
  const admin = async (app: FastifyInstance, bearer: string): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'GET', url: '/admin/api/stats', headers: { authorization: `Bearer ${bearer}` }, remoteAddress: ip })
  isError(t, await admin(one, 'wrong'), 401, 'ADMIN_UNAUTHORIZED')
  isError(t, await admin(two, 'wrong'), 401, 'ADMIN_UNAUTHORIZED')
  limited(t, await admin(one, ADMIN_TOKEN), 'wrong admin tokens on both instances count together')
  limited(t, await admin(two, 'wrong'), 'on either instance')
  const refused = await one.db.selectFrom('admin_audit').select('action').where('action', '=', 'admin-token-refused').execute()
  t.equal(refused.length, 1, 'one audit row for the refusals on both instances')
})

t.test('counter names in Redis say neither an address, a username, nor who writes to whom', { skip }, async t => {
  const ADMIN_TOKEN = randomBytes(32).toString('base64url')
  const { apps } = await service(t, { ADMIN_TOKEN })
  const app = apps[0] as FastifyInstance
  const ip = freshIp()
  const [a, b] = [fresh(), fresh()]
  const alice = { name: a, token: await user(app, a) }
  const bob = { name: b, token: await user(app, b) }
  await befriend(app, alice, bob)
  const as = { remoteAddress: ip }
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: a, password: 'wrong-password' }, ...as })).statusCode, 401)
  t.equal((await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: b, sender_blob: 's', recipient_blob: 'r' }, ...as })).statusCode, 201)
  t.equal((await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'k1' }, ...as })).statusCode, 200)
  t.equal((await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'k2' }, ...as })).statusCode, 200)
  const stranger = fresh()
  t.equal((await call(app, alice.token, { method: 'GET', url: '/get_key', query: { username: stranger }, ...as })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/admin/api/stats', headers: { authorization: 'Bearer wrong' }, ...as })).statusCode, 401)
  // a prekey bundle fetch: its bucket names the pair of accounts and the device only by a hash
  await publishKeys(app, await deviceLogin(app, b, { id: 1, registrationId: 9 }))
  t.equal((await call(app, alice.token, { method: 'GET', url: `/v1/keys/${b}/1`, ...as })).statusCode, 200)

  const { Redis } = await import('ioredis')
  const redis = new Redis(redisUrl as string)
  t.teardown(() => { redis.disconnect() })
  const names: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${app.config.redisPrefix}rl:*`, 'COUNT', 1000)
    cursor = next
    names.push(...batch)
  } while (cursor !== '0')
  t.ok(names.length >= 8, `counters were written (${names.length})`)
  t.ok(names.some(name => name.startsWith(`${app.config.redisPrefix}rl:prekeys:`)), 'the prekey bucket is among them')
  for (const secret of [a, b, stranger, ip]) {
    t.notOk(names.some(name => name.toLowerCase().includes(secret.toLowerCase())), `no counter is named by ${secret === ip ? 'the address' : 'a username'}`)
  }
})
