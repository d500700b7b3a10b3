import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../app.js'
import { PASSWORD, bearer, befriend, build, call, freshDatabaseEnv, login, postgresUrl, redisUrl, register, testConfig, user } from './helper.js'
import { Client, eventually, listen } from './realtime-helper.js'

// GET /metrics (METRICS=on): a short scripted session, then each counter read before and
// after, and the gauges while a socket and a long-poll are held.

interface Sample { name: string, labels: Record<string, string>, value: number }
interface Family { help: string, type: string, samples: Sample[] }

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`)
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/gy
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created']

/**
 * Parses the Prometheus text format, strictly: every line a HELP, a TYPE or a sample; a family's
 * HELP and TYPE before its samples; each sample of a declared family; values numbers.
 */
function parse (t: Test, text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  t.ok(text.endsWith('\n'), 'the output ends with a newline')
  for (const line of text.split('\n').slice(0, -1)) {
    if (line.trim() === '') continue // blank lines are ignored by the format
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta !== null) {
      const [, what, name = '', rest = ''] = meta
      const family = families.get(name) ?? { help: '', type: '', samples: [] }
      families.set(name, family)
      if (what === 'HELP') family.help = rest
      else if (['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) family.type = rest
      else t.fail(`unknown type: ${line}`)
      continue
    }
    const sample = SAMPLE.exec(line)
    if (sample === null) {
      t.fail(`not a Prometheus line: ${JSON.stringify(line)}`)
      continue
    }
    const [, name = '', labelText = '', valueText = ''] = sample
    const labels: Record<string, string> = {}
    LABEL.lastIndex = 0
    let consumed = 0
    for (let match = LABEL.exec(labelText); match !== null; match = LABEL.exec(labelText)) {
      labels[match[1] ?? ''] = match[2] ?? ''
      consumed = LABEL.lastIndex
    }
    if (consumed !== labelText.length) t.fail(`bad labels: ${line}`)
    // as Prometheus reads it (Go's ParseFloat): NaN and Inf in any case; prom-client writes "Nan"
    const value = /^nan$/i.test(valueText) ? NaN : Number(valueText.replace(/^([+-]?)inf$/i, '$1Infinity'))
    if (Number.isNaN(value) && !/^nan$/i.test(valueText)) t.fail(`bad value: ${line}`)
    const base = families.has(name) ? name : SUFFIXES.map(suffix => name.endsWith(suffix) ? name.slice(0, -suffix.length) : '').find(stem => families.has(stem))
    const family = base === undefined ? undefined : families.get(base)
    if (family === undefined || family.help === '' || family.type === '') {
      t.fail(`a sample without its HELP and TYPE: ${line}`)
      continue
    }
    family.samples.push({ name, labels, value })
  }
  return families
}

/** The metrics as GET /metrics on the main port gives them, parsed. */
async function scrape (t: Test, app: FastifyInstance): Promise<Metrics> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  return new Metrics(parse(t, res.body), res.body)
}

class Metrics {
  constructor (readonly families: Map<string, Family>, readonly text: string) {}

  /** The value of the sample `name` with exactly these labels (0 when absent, as Prometheus would read a counter not yet seen). */
  value (name: string, labels: Record<string, string> = {}): number {
    const stem = [name, ...SUFFIXES.map(suffix => name.endsWith(suffix) ? name.slice(0, -suffix.length) : '')].find(n => this.families.has(n)) ?? name
    const sample = this.families.get(stem)?.samples.find(s => s.name === name && sameLabels(s.labels, labels))
    return sample?.value ?? 0
  }
}

function sameLabels (a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every(key => a[key] === b[key])
}

const http = (method: string, route: string, status: number): Record<string, string> => ({ method, route, status_code: String(status) })

const FAMILIES: Record<string, string> = {
  cryptachat_http_requests_total: 'counter',
  cryptachat_http_request_duration_seconds: 'histogram',
  cryptachat_rate_limit_refusals_total: 'counter',
  cryptachat_hub_hints_published_total: 'counter',
  cryptachat_hub_hints_received_total: 'counter',
  cryptachat_long_polls_waiting: 'gauge',
  cryptachat_websockets_open: 'gauge',
  cryptachat_websockets_opened_total: 'counter',
  cryptachat_password_hashes_running: 'gauge',
  cryptachat_password_hashes_waiting: 'gauge',
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  nodejs_eventloop_lag_p50_seconds: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge'
}

t.test('off by default: no /metrics, no listener, no-op hooks', async t => {
  const app = await build(t)
  t.equal(app.config.metrics.enabled, false)
  t.equal(app.metrics.enabled, false)
  t.equal(app.metrics.hints, undefined, 'the hub is given no counters to call')
  t.equal(app.metrics.address, undefined)
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { statusCode: 404, code: String })
})

t.test('a scripted session moves each counter by exactly its amount', async t => {
  const N = 5
  const app = await build(t, {
    METRICS: 'on',
    RATE_LIMIT: 'on',
    RATE_LIMIT_REGISTER: '2/hour',
    RATE_LIMIT_SEND_MESSAGE_PAIR: `${N}/hour`
  })
  t.equal(app.metrics.address, undefined, 'no listener of its own without METRICS_PORT')
  const before = await scrape(t, app)
  for (const [name, type] of Object.entries(FAMILIES)) {
    t.equal(before.families.get(name)?.type, type, `${name} is a ${type}`)
    t.not(before.families.get(name)?.help ?? '', '', `${name} has its HELP`)
  }
  t.equal(before.families.has('cryptachat_group_commit_batch_writes'), true)
  t.equal(before.families.get('cryptachat_sqlite_wal_hold_seconds')?.type, 'histogram', 'the WAL holds (test/db/checkpointer.test.ts makes some)')
  t.equal(before.families.has('cryptachat_db_pool_connections'), postgresUrl !== undefined, 'pool gauges only on PostgreSQL')

  t.equal((await register(app, 'alice_metrics')).statusCode, 201)
  t.equal((await register(app, 'bob_metrics')).statusCode, 201)
  t.equal((await register(app, 'carol_metrics')).statusCode, 429, 'the third registration from this address is refused')
  const alice = { name: 'alice_metrics', token: (await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice_metrics', password: PASSWORD } })).json().token }
  const bob = { name: 'bob_metrics', token: (await app.inject({ method: 'POST', url: '/login', payload: { username: 'bob_metrics', password: PASSWORD } })).json().token }
  t.equal((await call(app, alice.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: bob.name } })).statusCode, 201)
  const beforeAccept = await scrape(t, app)
  t.equal((await call(app, bob.token, { method: 'POST', url: '/accept_chat', payload: { requester_username: alice.name } })).statusCode, 200)
  const beforeSends = await scrape(t, app)
  const send = async (i: number): Promise<number> => (await call(app, alice.token, {
    method: 'POST', url: '/send_message', payload: { recipient_username: bob.name, sender_blob: `s${i}`, recipient_blob: `r${i}` }
  })).statusCode
  for (let i = 1; i < N; i++) t.equal(await send(i), 201)

  // a long-poll held: the gauge reads 1 while it waits, 0 once the last send wakes it
  const { next } = (await call(app, bob.token, { method: 'GET', url: '/sync' })).json()
  const poll = call(app, bob.token, { method: 'GET', url: '/sync', query: { since: next, timeout: '20' } })
  await eventually(async () => (await scrape(t, app)).value('cryptachat_long_polls_waiting') === 1)
  t.equal(await send(N), 201)
  t.equal((await poll).statusCode, 200)
  t.equal((await scrape(t, app)).value('cryptachat_long_polls_waiting'), 0, 'the long-poll is no longer counted')
  const afterSends = await scrape(t, app)
  t.equal(await send(N + 1), 429, 'past the pair limit')
  t.equal((await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: bob.name } })).statusCode, 400, 'a bad request')
  t.equal((await app.inject({ method: 'GET', url: `/users/${alice.name}/nothing-here` })).statusCode, 404, 'no such route')

  // a WebSocket held: counted while open, not once closed
  const base = await listen(app)
  const socket = await Client.open(base, bob.token)
  await socket.until('ready')
  t.equal((await scrape(t, app)).value('cryptachat_websockets_open'), 1)
  await socket.close()
  await eventually(async () => (await scrape(t, app)).value('cryptachat_websockets_open') === 0)

  const after = await scrape(t, app)
  const moved = (name: string, labels: Record<string, string> = {}, from = before): number => after.value(name, labels) - from.value(name, labels)
  const requests = 'cryptachat_http_requests_total'
  t.equal(moved(requests, http('POST', '/register', 201)), 2)
  t.equal(moved(requests, http('POST', '/register', 429)), 1)
  t.equal(moved(requests, http('POST', '/login', 200)), 2)
  t.equal(moved(requests, http('POST', '/request_chat', 201)), 1)
  t.equal(moved(requests, http('POST', '/accept_chat', 200)), 1)
  t.equal(moved(requests, http('POST', '/send_message', 201)), N)
  t.equal(moved(requests, http('POST', '/send_message', 429)), 1)
  t.equal(moved(requests, http('POST', '/send_message', 400)), 1)
  t.equal(moved(requests, http('GET', '/sync', 200)), 2)
  t.equal(moved(requests, http('GET', 'unmatched', 404)), 1, 'an unmatched URL counts under one label')
  t.equal(moved('cryptachat_websockets_opened_total'), 1, 'the upgraded request is counted as a socket (it never ends as an HTTP answer)')
  t.equal(moved('cryptachat_http_request_duration_seconds_count', http('POST', '/send_message', 201)), N, 'the latency histogram counts each request')
  t.ok(moved('cryptachat_http_request_duration_seconds_sum', http('GET', '/sync', 200)) > 0)
  t.equal(moved('cryptachat_http_request_duration_seconds_bucket', { ...http('POST', '/send_message', 201), le: '+Inf' }), N)

  const refusals = 'cryptachat_rate_limit_refusals_total'
  t.equal(moved(refusals, { route: '/register', limit: 'address' }), 1)
  t.equal(moved(refusals, { route: '/send_message', limit: 'send-pair' }), 1)
  t.equal([...after.families.get(refusals)?.samples ?? []].reduce((sum, s) => sum + s.value, 0), 2, 'no other refusal')

  // each stored message hints its two users; accept_chat hints both users too
  const hints = 'cryptachat_hub_hints_published_total'
  t.equal(afterSends.value(hints, { kind: 'news' }) - beforeSends.value(hints, { kind: 'news' }), 2 * N)
  t.equal(beforeSends.value(hints, { kind: 'news' }) - beforeAccept.value(hints, { kind: 'news' }), 2)
  if (postgresUrl === undefined) {
    // every stored message is one grouped write, and these were sent one at a time
    t.equal(moved('cryptachat_group_commit_batch_writes_sum'), N)
    t.equal(moved('cryptachat_group_commit_batch_writes_count'), N)
    t.equal(moved('cryptachat_group_commit_batch_writes_bucket', { le: '1' }), N)
  } else {
    t.equal(after.families.get('cryptachat_group_commit_batch_writes')?.samples.find(s => s.name.endsWith('_count'))?.value, 0, 'no group commit on PostgreSQL')
    t.ok(after.value('cryptachat_db_pool_connections') >= 1, 'the pool holds a connection')
    t.ok(after.value('cryptachat_db_pool_idle_connections') <= after.value('cryptachat_db_pool_connections'))
    t.equal(after.value('cryptachat_db_pool_waiting_queries'), 0)
    t.equal(after.value('cryptachat_db_pool_max_connections'), 10)
  }
  t.equal(after.value('cryptachat_password_hashes_running'), 0)
  t.equal(after.value('cryptachat_password_hashes_waiting'), 0)
  t.ok(after.value('nodejs_heap_size_used_bytes') > 0)
  t.ok(after.value('nodejs_eventloop_lag_p99_seconds') >= after.value('nodejs_eventloop_lag_p50_seconds'))

  for (const name of ['alice', 'bob', 'carol']) t.notOk(after.text.includes(name), `no "${name}" anywhere in the output`)
  t.notOk(after.text.includes('nothing-here'), 'no raw URL in a label')
})

t.test('connections past the caps: 429s counted per route and limit, the sockets and polls held read right', async t => {
  const app = await build(t, { METRICS: 'on', RATE_LIMIT: 'on', RATE_LIMIT_CONNECTIONS_PER_USER: '1' })
  const token = await user(app, 'alice')
  const base = await listen(app)
  const before = await scrape(t, app)
  const socket = await Client.open(base, token)
  await socket.until('ready')
  t.equal((await Client.refused(base, token)).status, 429, 'a second socket is refused')
  t.equal((await call(app, token, { method: 'GET', url: '/sync', query: { timeout: '5' } })).statusCode, 429, 'and a long-poll')
  const held = await scrape(t, app)
  t.equal(held.value('cryptachat_websockets_open'), 1)
  t.equal(held.value('cryptachat_long_polls_waiting'), 0, 'a refused long-poll waits for nothing')
  await socket.close()
  const { next } = (await call(app, token, { method: 'GET', url: '/sync' })).json()
  await eventually(async () => (await scrape(t, app)).value('cryptachat_websockets_open') === 0)
  const poll = call(app, token, { method: 'GET', url: '/sync', query: { since: next, timeout: '1' } })
  await eventually(async () => (await scrape(t, app)).value('cryptachat_long_polls_waiting') === 1)
  t.equal((await poll).statusCode, 200, 'a long-poll with nothing new answers at its timeout')
  const after = await scrape(t, app)
  t.equal(after.value('cryptachat_long_polls_waiting'), 0)
  const refusals = 'cryptachat_rate_limit_refusals_total'
  t.equal(after.value(refusals, { route: '/ws', limit: 'connections-account' }) - before.value(refusals, { route: '/ws', limit: 'connections-account' }), 1)
  t.equal(after.value(refusals, { route: '/sync', limit: 'connections-account' }) - before.value(refusals, { route: '/sync', limit: 'connections-account' }), 1)
  t.equal(after.value('cryptachat_http_requests_total', http('GET', '/ws', 429)), 1, 'a refused upgrade is an HTTP answer, counted')
  t.equal(after.value('cryptachat_websockets_opened_total') - before.value('cryptachat_websockets_opened_total'), 1)
})

t.test('failed logins and wrong admin tokens past their budgets: 429s under their own limit names', async t => {
  const adminToken = randomBytes(32).toString('base64url')
  const app = await build(t, { METRICS: 'on', RATE_LIMIT: 'on', RATE_LIMIT_LOGIN_FAILURES: '1/hour', RATE_LIMIT_ADMIN_FAILURES: '1/hour', ADMIN_TOKEN: adminToken })
  await user(app, 'dave')
  const wrong = { method: 'POST' as const, url: '/login', payload: { username: 'dave', password: 'not the password' } }
  t.equal((await app.inject(wrong)).statusCode, 401)
  t.equal((await app.inject(wrong)).statusCode, 429)
  const admin = { method: 'GET' as const, url: '/admin/api/stats', headers: bearer('not the admin token') }
  t.equal((await app.inject(admin)).statusCode, 401)
  t.equal((await app.inject(admin)).statusCode, 429)
  const metrics = await scrape(t, app)
  t.equal(metrics.value('cryptachat_rate_limit_refusals_total', { route: '/login', limit: 'login-failures' }), 1)
  t.equal(metrics.value('cryptachat_rate_limit_refusals_total', { route: '/admin/api/stats', limit: 'admin-failures' }), 1)
  t.notOk(metrics.text.includes('dave'))
  t.notOk(metrics.text.includes(adminToken))
})

t.test('the Argon2 queue is read at the scrape', async t => {
  const app = await build(t, { METRICS: 'on', PASSWORD_HASH_CONCURRENCY: '1' })
  const hashes = Promise.all([1, 2, 3].map(async i => await app.passwords.hash(`password ${i}`)))
  const during = await scrape(t, app)
  t.equal(during.value('cryptachat_password_hashes_running'), 1)
  t.equal(during.value('cryptachat_password_hashes_waiting'), 2)
  await hashes
  const after = await scrape(t, app)
  t.equal(after.value('cryptachat_password_hashes_running'), 0)
  t.equal(after.value('cryptachat_password_hashes_waiting'), 0)
})

t.test('writes sent together: each counted once, in as many groups as were committed (SQLite)', { skip: postgresUrl !== undefined && 'no group commit on PostgreSQL' }, async t => {
  const app = await build(t, { METRICS: 'on' })
  await befriend(app, { name: 'alice', token: await user(app, 'alice') }, { name: 'bob', token: await user(app, 'bob') })
  const alice = { token: await login(app, 'alice') }
  const before = await scrape(t, app)
  const M = 8
  const codes = await Promise.all(Array.from({ length: M }, async (_, i) => (await call(app, alice.token, {
    method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: `s${i}`, recipient_blob: `r${i}` }
  })).statusCode))
  t.same(codes, Array(M).fill(201))
  const after = await scrape(t, app)
  t.equal(after.value('cryptachat_group_commit_batch_writes_sum') - before.value('cryptachat_group_commit_batch_writes_sum'), M, 'every write in some group')
  const groups = after.value('cryptachat_group_commit_batch_writes_count') - before.value('cryptachat_group_commit_batch_writes_count')
  t.ok(groups >= 1 && groups <= M, `${M} writes in ${groups} group(s)`)
})

t.test('METRICS_PORT: a listener of its own, on HOST; not on the main port; closed with the app', async t => {
  const app = await buildApp(await testConfig(t, { METRICS: 'on', METRICS_PORT: '0' }))
  let closed = false
  t.teardown(async () => { if (!closed) await app.close() })
  const address = app.metrics.address
  if (address === undefined) throw new Error('no metrics listener')
  t.equal(address.host, '127.0.0.1', 'bound to HOST')
  t.ok(address.port > 0)
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404, 'not on the main port')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  const url = `http://127.0.0.1:${address.port}`
  const res = await fetch(`${url}/metrics`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const metrics = new Metrics(parse(t, await res.text()), '')
  t.equal(metrics.value('cryptachat_http_requests_total', http('GET', '/healthz', 200)), 1, 'counts the main port\'s requests')
  t.equal(metrics.value('cryptachat_http_requests_total', http('GET', 'unmatched', 404)), 1)
  t.equal((await fetch(`${url}/`)).status, 404, 'only /metrics on the metrics port')
  t.equal((await fetch(`${url}/metrics`, { method: 'POST' })).status, 404)
  await app.close()
  closed = true
  await t.rejects(fetch(`${url}/metrics`), 'the listener is closed with the app')
})

t.test('METRICS_HOST binds the metrics listener elsewhere than HOST', async t => {
  const app = await buildApp(await testConfig(t, { METRICS: 'on', METRICS_PORT: '0', HOST: '0.0.0.0', METRICS_HOST: '127.0.0.1' }))
  t.teardown(async () => { await app.close() })
  t.equal(app.metrics.address?.host, '127.0.0.1')
})

t.test('a metrics port already taken fails the start, naming the address', async t => {
  const first = await buildApp(await testConfig(t, { METRICS: 'on', METRICS_PORT: '0' }))
  t.teardown(async () => { await first.close() })
  const port = String(first.metrics.address?.port)
  await t.rejects(buildApp(await testConfig(t, { METRICS: 'on', METRICS_PORT: port })), { code: 'EADDRINUSE' })
})

t.test('hub hints through Redis: published on one instance, received on the other', { skip: (postgresUrl === undefined || redisUrl === undefined) && 'needs DATABASE_URL (PostgreSQL) and REDIS_URL' }, async t => {
  const env = { ...await freshDatabaseEnv(t), JWT_SECRET: randomBytes(32).toString('base64'), REDIS_URL: redisUrl ?? '', REDIS_PREFIX: `test-${randomBytes(6).toString('hex')}:`, METRICS: 'on' }
  const a = await build(t, env)
  const b = await build(t, env)
  const alice = { name: 'alice', token: await user(a, 'alice') }
  const bob = { name: 'bob', token: await user(a, 'bob') }
  t.equal((await call(a, alice.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })).statusCode, 201)
  t.equal((await call(a, bob.token, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } })).statusCode, 200)
  const { next } = (await call(b, bob.token, { method: 'GET', url: '/sync' })).json()
  const beforeA = await scrape(t, a)
  const beforeB = await scrape(t, b)
  // Bob waits on B (B subscribes to his channel only); Alice sends through A
  const poll = call(b, bob.token, { method: 'GET', url: '/sync', query: { since: next, timeout: '20' } })
  await eventually(async () => (await scrape(t, b)).value('cryptachat_long_polls_waiting') === 1)
  t.equal((await call(a, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r' } })).statusCode, 201)
  t.equal((await poll).statusCode, 200)
  const afterA = await scrape(t, a)
  const afterB = await scrape(t, b)
  const news = { kind: 'news' }
  t.equal(afterA.value('cryptachat_hub_hints_published_total', news) - beforeA.value('cryptachat_hub_hints_published_total', news), 2, 'A told Alice and Bob')
  t.equal(afterB.value('cryptachat_hub_hints_received_total', news) - beforeB.value('cryptachat_hub_hints_received_total', news), 1, 'B heard of Bob, the one it listens for')
  t.equal(afterA.value('cryptachat_hub_hints_received_total', news) - beforeA.value('cryptachat_hub_hints_received_total', news), 0, 'A ignores its own hints')
  // B's logout through B: one disconnect hint published
  t.equal((await b.inject({ method: 'POST', url: '/logout', headers: bearer(bob.token) })).statusCode, 200)
  t.equal((await scrape(t, b)).value('cryptachat_hub_hints_published_total', { kind: 'disconnect' }) - afterB.value('cryptachat_hub_hints_published_total', { kind: 'disconnect' }), 1)
  t.ok(afterA.value('cryptachat_db_pool_connections') >= 1)
})
