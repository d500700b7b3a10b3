import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp, serverOptions } from '../app.js'
import { LOG_FLUSH_MS, chunkedDestination, clientHasher, redactedUrl } from '../logging.js'
import { ADMIN_TOKEN, PASSWORD, bearer, capturedLogs, testConfig, user } from './helper.js'

// One log line per request, written when it completes. At `info` it names the route, never
// the URL as sent (its query string names whom a user reads) nor a username, and the client's
// address only as LOG_CLIENT_IP says. At every level no token appears, however it is encoded.

type Lines = Array<Record<string, any>>

async function loggedApp (t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance, lines: Lines }> {
  const config = await testConfig(t, { ADMIN_TOKEN, ...env })
  const { logger, lines } = capturedLogs(config)
  const app = await buildApp(config, { logger })
  t.teardown(async () => { await app.close() })
  return { app, lines }
}

const CLIENT = '203.0.113.7'
const OTHER_CLIENT = '198.51.100.9'

/** Requests that name users in every place a request can: query, path, body. */
async function namingRequests (app: FastifyInstance, token: string): Promise<void> {
  await app.inject({ method: 'GET', url: '/get_key?username=bobby_reads', headers: bearer(token), remoteAddress: CLIENT })
  await app.inject({ method: 'GET', url: '/get_messages?username=bobby_reads', headers: bearer(token), remoteAddress: CLIENT })
  await app.inject({ method: 'GET', url: '/admin/api/users/alice_writes', headers: bearer(ADMIN_TOKEN), remoteAddress: CLIENT })
  await app.inject({ method: 'GET', url: '/nowhere/alice_writes?username=bobby_reads', remoteAddress: CLIENT })
  await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice_writes', password: PASSWORD }, remoteAddress: OTHER_CLIENT })
}

const completed = (lines: Lines): Lines => lines.filter(line => line.msg === 'request completed')

t.test('at info: one line per request, with its route, no query string, no username, no address', async t => {
  const { app, lines } = await loggedApp(t, { LOG_LEVEL: 'info' })
  const token = await user(app, 'alice_writes')
  lines.length = 0
  await namingRequests(app, token)
  const requestLines = completed(lines)
  t.equal(requestLines.length, 5, JSON.stringify(lines))
  t.match(requestLines[0], { level: 30, req: { method: 'GET', route: '/get_key' }, res: { statusCode: 404 } }) // no such user
  t.type(requestLines[0]?.responseTime, 'number')
  t.match(requestLines[2], { req: { route: '/admin/api/users/:username' } }, 'a path parameter is logged as the route names it')
  t.match(requestLines[3], { req: { route: '(none)' }, res: { statusCode: 404 } }, 'an unknown path is not repeated')
  const text = JSON.stringify(lines)
  t.notMatch(text, /alice_writes|bobby_reads/, 'no username')
  t.notMatch(text, /\?/, 'no query string')
  t.notMatch(text, /203\.0\.113\.7|198\.51\.100\.9|remoteAddress|remotePort/, 'no client address')
})

t.test('LOG_CLIENT_IP=on: each request line carries the client address', async t => {
  const { app, lines } = await loggedApp(t, { LOG_LEVEL: 'info', LOG_CLIENT_IP: 'on' })
  const token = await user(app, 'alice_writes')
  lines.length = 0
  await namingRequests(app, token)
  t.same(completed(lines).map(line => line.req.remoteAddress), [CLIENT, CLIENT, CLIENT, CLIENT, OTHER_CLIENT])
  t.notMatch(JSON.stringify(lines), /alice_writes|bobby_reads|\?/, 'still no username nor query string')
})

t.test('LOG_CLIENT_IP=hashed: a hash that is stable for one address, not the address', async t => {
  const { app, lines } = await loggedApp(t, { LOG_LEVEL: 'info', LOG_CLIENT_IP: 'hashed' })
  const token = await user(app, 'alice_writes')
  lines.length = 0
  await namingRequests(app, token)
  const hashes = completed(lines).map(line => line.req.client)
  t.equal(new Set(hashes.slice(0, 4)).size, 1, 'the same address, the same hash')
  t.not(hashes[4], hashes[0], 'another address, another hash')
  t.match(hashes[0], /^[A-Za-z0-9_-]{16}$/)
  const text = JSON.stringify(lines)
  t.notMatch(text, /203\.0\.113\.7|198\.51\.100\.9|remoteAddress/, 'no address')
  t.notMatch(text, /alice_writes|bobby_reads|\?/, 'no username nor query string')
})

t.test('the hash salt changes with the UTC day and with each process', async t => {
  let now = Date.UTC(2026, 10, 30, 0, 0, 0)
  const hash = clientHasher(() => now)
  const first = hash(CLIENT)
  now = Date.UTC(2026, 10, 30, 23, 59, 59)
  t.equal(hash(CLIENT), first, 'the whole UTC day')
  t.not(hash(OTHER_CLIENT), first)
  now = Date.UTC(2026, 11, 1, 0, 0, 0)
  t.not(hash(CLIENT), first, 'not the next day')
  t.not(clientHasher(() => Date.UTC(2026, 10, 30))(CLIENT), first, 'nor after a restart (a new salt)')
})

/** Every character as %XX, as a client is free to send it. */
const encodeAll = (text: string): string => [...text].map(c => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`).join('')

for (const level of ['info', 'debug', 'trace']) {
  t.test(`at ${level}: no token nor password in any log line, whatever its encoding`, async t => {
    const { app, lines } = await loggedApp(t, { LOG_LEVEL: level, LOG_CLIENT_IP: 'on' })
    const token = await user(app, 'alice_writes')
    const password = encodeURIComponent(PASSWORD)
    lines.length = 0
    const urls = [
      `/ws?token=${token}`, `/ws?%74oken=${token}`, `/ws?%2574oken=${token}`, `/ws?Token=${token}`, `/ws?TOKEN=${token}`,
      `/get_contacts?access_token=${token}&x=1`, `/get_contacts?x=${token}`, `/get_contacts?x=${encodeAll(token)}`,
      `/get_contacts/${token}`, `/get_contacts/${encodeAll(token)}`, `/get_contacts%3Ftoken=${token}`, `/ws;token=${token}`,
      `/login?password=${password}`, `/login?pass%77ord=${password}`, `/login?PASSWORD=${encodeAll(PASSWORD)}`
    ]
    for (const url of urls) await app.inject({ method: 'GET', url })
    await app.inject({ method: 'GET', url: '/get_contacts', headers: { authorization: `Bearer ${token}` } })
    await app.inject({ method: 'GET', url: '/ws', headers: { 'sec-websocket-protocol': `bearer, ${token}` } })
    await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice_writes', password: PASSWORD } })
    const text = JSON.stringify(lines)
    t.ok(completed(lines).length >= urls.length + 3, 'the requests were logged')
    const [, payload = '', signature = ''] = token.split('.')
    for (const secret of [token, payload, signature, PASSWORD, 'horse']) t.notOk(text.includes(secret), `${secret.slice(0, 12)}... is not logged`)
    if (level !== 'info') {
      const urlsLogged = lines.filter(line => line.msg === 'incoming request').map(line => line.url)
      t.equal(urlsLogged.length, urls.length + 3, 'the incoming lines carry the URL')
      t.equal(urlsLogged[0], '/ws?token=[redacted]', 'in the shape it came in')
      t.equal(urlsLogged[5], '/get_contacts?access_token=[redacted]&x=1')
    }
  })
}

t.test("Fastify's own 404 handler (an app without ours) does not log the URL either", async t => {
  const config = await testConfig(t, { LOG_LEVEL: 'info' })
  const { logger, lines } = capturedLogs(config)
  const bare = Fastify({ ...serverOptions(config), logger })
  t.teardown(async () => { await bare.close() })
  const res = await bare.inject({ url: '/nowhere/alice_writes?username=bobby_reads&token=aaaaaaaaaa.bbbbbbbbbb.cccccccccc' })
  t.equal(res.statusCode, 404)
  t.ok(lines.some(line => line.msg === 'route not found' && line.req.route === '(none)'), 'the miss is logged')
  t.notMatch(JSON.stringify(lines), /alice_writes|bobby_reads|aaaaaaaaaa|\?/)
})

t.test('redactedUrl decodes before it redacts', async t => {
  t.equal(redactedUrl('/get_messages?username=alice&limit=5'), '/get_messages?username=alice&limit=5', 'other values are kept')
  t.equal(redactedUrl('/ws?%74oken=abc&x=%2'), '/ws?token=[redacted]&x=%2', 'a bad escape is kept as it is')
  t.equal(redactedUrl('/a%3Fsecret=abc'), '/a?secret=[redacted]')
  t.equal(redactedUrl('/a?Authorization=Bearer+abc'), '/a?Authorization=[redacted]')
})

t.test('a line written while an earlier write is in flight comes out by the timer, not with the next line', async t => {
  // A FIFO this test reads only when it chooses: a write larger than the pipe holds stays in
  // flight (in the thread pool) until the test reads, so the timer ticks while it is.
  const dir = mkdtempSync(join(tmpdir(), 'cc-log-'))
  const fifo = join(dir, 'log')
  execFileSync('mkfifo', [fifo])
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
  const destination = chunkedDestination(fifo)
  t.teardown(() => { destination.destroy(); closeSync(reader); rmSync(dir, { recursive: true, force: true }) })
  await once(destination, 'ready')

  const big = 'x'.repeat(256 * 1024) + '\n' // more than a chunk and than the pipe's 64 KiB
  destination.write(big)
  const last = '{"msg":"Server listening"}\n' // far less than a chunk
  destination.write(last)
  await sleep(4 * LOG_FLUSH_MS) // ticks while the big write waits for the reader

  let got = ''
  const buffer = Buffer.alloc(64 * 1024)
  const deadline = Date.now() + 20 * LOG_FLUSH_MS + 2000
  while (!got.endsWith(last) && Date.now() < deadline) {
    let n = 0
    try { n = readSync(reader, buffer) } catch (error) { if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error }
    if (n > 0) got += buffer.toString('utf8', 0, n)
    else await sleep(10)
  }
  t.equal(got.length, big.length + last.length, 'every byte written')
  t.ok(got.endsWith(last), 'the short line after the big one came out though no line followed it')
})
