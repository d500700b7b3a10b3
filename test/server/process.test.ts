import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import http from 'node:http'
import pg from 'pg'
import t from 'tap'
import { freshDatabaseEnv } from '../helper.js'
import { LOG_FLUSH_MS } from '../../logging.js'
import { listening, startServer, until } from '../processes.js'

// The real server process, as `npm start` runs it (from the TypeScript sources here).

// three server starts from the TypeScript sources: more than the default time per file
t.setTimeout(10 * 60_000)

t.test('serves on SQLite in DATA_DIR, keeps sessions across restarts, and shuts down gracefully', async t => {
  const dataDir = await mkdtemp(join(tmpdir(), 'cc-server-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const env = { DATA_DIR: dataDir, LOG_LEVEL: 'info' }

  // debug for the first run: the server logs each request as it arrives
  let server = startServer({ ...env, LOG_LEVEL: 'debug' })
  let url = await listening(server)
  t.same(await (await fetch(`${url}/readyz`)).json(), { status: 'ready', hub: 'local' })
  await fetch(`${url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'correct horse' }) })
  const { token } = await (await fetch(`${url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'correct horse' }) })).json() as { token: string }
  t.ok((await stat(join(dataDir, 'cryptachat.db'))).isFile(), 'SQLite file under DATA_DIR')
  t.equal(((await stat(join(dataDir, 'jwt-secret'))).mode & 0o777), 0o600, 'generated secret readable by the owner only')

  // A request in flight when SIGTERM arrives still gets its answer. In flight for sure, not
  // by a guess at timing: its headers and half its body are sent, the server logs (at
  // debug) that it has the request, and the rest of the body goes only after the signal.
  const body = JSON.stringify({ username: 'alice', password: 'correct horse' })
  const arrived = (): string[] => [...server.output().matchAll(/^.*"msg":"incoming request".*$/gm)].map(([line]) => line).filter(line => line.includes('"url":"/login"'))
  // the login above is the one before: its line may still be in the log's buffer (lines go
  // out in chunks, logging.ts), and counted late it would pass for the line of the one below
  await until(() => arrived().length === 1, 'the login before is logged as incoming')
  const loginsBefore = arrived().length
  const request = http.request(`${url}/login`, {
    method: 'POST',
    // its own connection, closed after the answer: an idle keep-alive one would hold the close up
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }
  })
  const answered = once(request, 'response') as Promise<[http.IncomingMessage]>
  request.write(body.slice(0, 10))
  await until(() => arrived().length > loginsBefore, 'the server logs the login as incoming')
  const reqId = (JSON.parse(arrived()[loginsBefore] ?? '{}') as { reqId?: string }).reqId
  server.child.kill('SIGTERM')
  await until(() => /server closing/.test(server.output()), 'the server logs that it is closing')
  t.equal(server.child.exitCode, null, 'the server waits for the request')
  request.end(body.slice(10))
  const [response] = await answered
  response.resume()
  t.equal(response.statusCode, 200, 'in-flight request finished')
  t.equal(response.headers['x-request-id'], reqId, 'the very request the server had logged as incoming')
  const [code] = await once(server.child, 'exit')
  t.equal(code, 0, 'clean exit', { output: server.output().slice(-2000) })
  t.notMatch(server.output(), /correct horse|eyJ/, 'no password or token in the logs')

  server = startServer(env)
  url = await listening(server)
  const res = await fetch(`${url}/get_contacts`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(res.status, 200, 'a token from before the restart still works')
  server.child.kill('SIGINT')
  t.equal((await once(server.child, 'exit'))[0], 0)
  t.ok(await readFile(join(dataDir, 'jwt-secret'), 'utf8'))
})

t.test('log lines are written in chunks, yet none waits long and none is lost at exit', async t => {
  const dataDir = await mkdtemp(join(tmpdir(), 'cc-server-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const server = startServer({ DATA_DIR: dataDir, LOG_LEVEL: 'info' })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const url = await listening(server)
  // a request refused for want of a token: one line each (the health checks log only warnings)
  const ask = async (): Promise<number> => (await fetch(`${url}/get_contacts`)).status
  const completed = (): number => server.output().split('"route":"/get_contacts"').length - 1
  // two lines, far less than a chunk: written by the timer, not by the buffer filling up
  for (let i = 0; i < 2; i++) t.equal(await ask(), 401)
  const asked = Date.now()
  await until(() => completed() === 2, 'both request lines are written', 5000)
  const waited = Date.now() - asked
  t.ok(waited < 2000, `a quiet server's lines came out by its timer (${waited} ms; it writes every ${LOG_FLUSH_MS} ms)`)
  // many lines, more than a chunk (4 KiB), then the signal: every one is there once it exits
  t.same(new Set(await Promise.all(Array.from({ length: 60 }, ask))), new Set([401]))
  server.child.kill('SIGTERM')
  const [code] = await once(server.child, 'exit')
  t.equal(code, 0)
  t.equal(completed(), 62, 'every request line was written before the process ended')
  t.match(server.output(), /"msg":"server closing"/)
})

t.test('a bad setting stops the start with a clear message', async t => {
  const server = startServer({ PORT: 'abc', LOG_LEVEL: 'loud' })
  const [code] = await once(server.child, 'exit')
  t.equal(code, 78)
  t.match(server.output(), /PORT="abc"/)
  t.match(server.output(), /LOG_LEVEL="loud"/)
})

t.test('a start that fails (the metrics port taken) says what failed in one line and exits 1', async t => {
  const taken = http.createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => { taken.close() })
  const { port } = taken.address() as { port: number }
  const dataDir = await mkdtemp(join(tmpdir(), 'cc-server-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const server = startServer({ DATA_DIR: dataDir, METRICS: 'on', METRICS_PORT: String(port) })
  const [code] = await once(server.child, 'exit')
  t.equal(code, 1)
  t.match(server.output(), /^could not start: EADDRINUSE .*$/m)
  t.notMatch(server.output(), /^\s+at /m, 'no stack trace')
})

t.test('runs on the database DATABASE_URL names', async t => {
  const env = await freshDatabaseEnv(t)
  const server = startServer({ ...env, JWT_SECRET: randomBytes(36).toString('base64') })
  t.teardown(() => { server.child.kill('SIGTERM') })
  const url = await listening(server)
  t.same(await (await fetch(`${url}/readyz`)).json(), { status: 'ready', hub: 'local' })
  const res = await fetch(`${url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'correct horse' }) })
  t.equal(res.status, 201)
  if (env.DATABASE_SCHEMA !== undefined) {
    const client = new pg.Client({ connectionString: env.DATABASE_URL })
    await client.connect()
    const { rows } = await client.query(`select username from ${env.DATABASE_SCHEMA}.users`)
    await client.end()
    t.same(rows, [{ username: 'alice' }], 'the user is in PostgreSQL, in its schema')
  }
})
