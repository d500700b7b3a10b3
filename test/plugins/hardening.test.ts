import { Writable } from 'node:stream'
import type { FastifyServerOptions } from 'fastify'
import t from 'tap'
import { buildApp, serverOptions } from '../../app.js'
import { helmetHeaders } from '../../plugins/external/helmet.js'
import { ConfigError, loadConfig } from '../../config.js'
import { PASSWORD, befriend, build, call, isError, testConfig, user } from '../helper.js'

t.test('security headers on every reply, and no x-powered-by', async t => {
  const app = await build(t)
  for (const res of [await app.inject({ url: '/healthz' }), await app.inject({ method: 'POST', url: '/login', payload: {} }), await app.inject({ url: '/nowhere' })]) {
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.match(res.headers['strict-transport-security'], /max-age=/)
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN')
    t.match(res.headers['content-security-policy'], /default-src 'self'/)
    t.equal(res.headers['x-powered-by'], undefined)
  }
})

t.test("every reply carries exactly helmet's default headers, errors and 404s included", async t => {
  const app = await build(t)
  const expected = helmetHeaders()
  t.ok(Object.keys(expected).length >= 10, 'helmet sets its usual dozen headers')
  const replies = [
    await app.inject({ url: '/healthz' }),
    await app.inject({ url: '/get_contacts' }),
    await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload: '{"username":' }),
    await app.inject({ url: '/nowhere' })
  ]
  t.same(replies.map(res => res.statusCode), [200, 401, 400, 404])
  for (const res of replies) {
    for (const [name, value] of Object.entries(expected)) t.equal(res.headers[name], value, `${res.statusCode}: ${name}`)
  }
})

t.test('the docs UI still loads under its own CSP', async t => {
  const app = await build(t)
  const page = await app.inject({ url: '/docs/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.headers['content-security-policy'], /script-src 'self'/)
  t.notMatch(page.headers['content-security-policy'], /upgrade-insecure-requests/)
  const spec = await app.inject({ url: '/docs/json' })
  t.equal(spec.statusCode, 200)
})

t.test('CORS is closed by default', async t => {
  const app = await build(t)
  const res = await app.inject({ url: '/healthz', headers: { origin: 'https://evil.example' } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['access-control-allow-origin'], undefined)
  const preflight = await app.inject({ method: 'OPTIONS', url: '/login', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
  isError(t, preflight, 404, 'ROUTE_NOT_FOUND')
  t.equal(preflight.headers['access-control-allow-origin'], undefined)
})

t.test('CORS_ORIGINS opens it to the listed origins only', async t => {
  const app = await build(t, { CORS_ORIGINS: 'https://chat.example.org, http://localhost:3000' })
  const ok = await app.inject({ url: '/healthz', headers: { origin: 'https://chat.example.org' } })
  t.equal(ok.headers['access-control-allow-origin'], 'https://chat.example.org')
  t.match(ok.headers['access-control-expose-headers'], /Retry-After/)
  const local = await app.inject({ url: '/healthz', headers: { origin: 'http://localhost:3000' } })
  t.equal(local.headers['access-control-allow-origin'], 'http://localhost:3000')
  const other = await app.inject({ url: '/healthz', headers: { origin: 'https://evil.example' } })
  t.equal(other.headers['access-control-allow-origin'], undefined)
  const preflight = await app.inject({ method: 'OPTIONS', url: '/send_message', headers: { origin: 'https://chat.example.org', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://chat.example.org')
  t.match(preflight.headers['access-control-allow-headers'], /Authorization/)
  const bare = await app.inject({ method: 'OPTIONS', url: '/send_message' })
  t.ok(bare.statusCode < 500, 'a malformed preflight is no server error')
  t.not(bare.headers['content-type'], 'text/plain', 'and never a text/plain error')
})

t.test('CORS_ORIGINS=* allows any origin', async t => {
  const app = await build(t, { CORS_ORIGINS: '*' })
  const res = await app.inject({ url: '/healthz', headers: { origin: 'https://anything.example' } })
  t.equal(res.headers['access-control-allow-origin'], '*')
})

t.test('bad settings are refused at start, by name', async t => {
  for (const [name, value] of [['CORS_ORIGINS', 'chat.example.org'], ['CORS_ORIGINS', 'https://a.example/path'], ['RATE_LIMIT_SEND_MESSAGE_SENDER', '10'], ['RATE_LIMIT_SEND_MESSAGE_PAIR', 'lots'], ['RATE_LIMIT_LOGIN_FAILURES', '5/fortnight'], ['RATE_LIMIT_LOGIN_FAILURES_ACCOUNT', '100'], ['RATE_LIMIT_SESSION_PASSWORD_FAILURES', 'five/hour']] as const) {
    t.throws(() => loadConfig({ NODE_ENV: 'test', [name]: value }), ConfigError, `${name}=${value}`)
    try { loadConfig({ NODE_ENV: 'test', [name]: value }) } catch (error) { t.match((error as Error).message, name) }
  }
  const config = loadConfig({ NODE_ENV: 'test' })
  t.same(config.corsOrigins, [])
  t.same(config.rateLimit.loginFailures, { max: 10, timeWindow: 15 * 60 * 1000 })
  t.same(config.rateLimit.loginFailuresAccount, { max: 100, timeWindow: 15 * 60 * 1000 })
  t.same(config.rateLimit.sessionPasswordFailures, { max: 5, timeWindow: 15 * 60 * 1000 })
  t.same(config.rateLimit.sendMessageSender, { max: 1200, timeWindow: 3600 * 1000 })
  t.same(config.rateLimit.sendMessagePair, { max: 600, timeWindow: 3600 * 1000 })
})

t.test('a body over BODY_LIMIT is a JSON 413', async t => {
  const app = await build(t, { BODY_LIMIT: '2048' })
  const token = await user(app, 'alice')
  const res = await call(app, token, { method: 'POST', url: '/upload_key', payload: { public_key: 'k'.repeat(4096) } })
  isError(t, res, 413, 'PAYLOAD_TOO_LARGE')
})

t.test('every reply carries a fresh request id; a client-sent one is not trusted', async t => {
  const app = await build(t)
  const a = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'forged' } })
  const b = await app.inject({ url: '/nowhere' })
  t.match(a.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.match(b.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.not(a.headers['x-request-id'], b.headers['x-request-id'])
})

/** The app with its real logger options, writing every line (trace level) into `lines`. */
async function loggedApp (t: Parameters<typeof build>[0], lines: string[]): Promise<Awaited<ReturnType<typeof buildApp>>> {
  const config = await testConfig(t, { LOG_LEVEL: 'trace' })
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done() } })
  const logger = serverOptions(config).logger as Exclude<FastifyServerOptions['logger'], boolean | undefined>
  const app = await buildApp(config, { logger: { ...logger, stream } })
  t.teardown(async () => { await app.close() })
  return app
}

t.test('request ids are in the log lines of each request', async t => {
  const lines: string[] = []
  const app = await loggedApp(t, lines)
  const res = await app.inject({ url: '/nowhere' })
  const mine = lines.map(line => JSON.parse(line)).filter(entry => entry.reqId === res.headers['x-request-id'])
  // at trace (and debug) the incoming line is logged too; at info only the completion (see logging.ts)
  t.same(mine.map(entry => entry.msg), ['incoming request', 'request completed'], 'both lines carry the request id')
  t.match(mine[0], { url: '/nowhere' }, 'the URL on the incoming line only')
  t.match(mine[1], { req: { method: 'GET', route: '(none)' }, res: { statusCode: 404 } })
})

t.test('the logger never writes passwords, tokens, keys or blobs', async t => {
  const lines: string[] = []
  const app = await loggedApp(t, lines)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  const secrets = [PASSWORD, alice.token, bob.token, 'SECRET-PUBLIC-KEY', 'SECRET-SENDER-BLOB', 'SECRET-RECIPIENT-BLOB', 'SECRET-NEW-PASSWORD']
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'SECRET-PUBLIC-KEY' } })
  await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 'SECRET-SENDER-BLOB', recipient_blob: 'SECRET-RECIPIENT-BLOB' } })
  await call(app, bob.token, { method: 'GET', url: '/get_messages?username=alice' })
  await app.inject({ url: `/ws?token=${alice.token}&x=1` })
  await app.inject({ url: `/get_contacts?access_token=${alice.token}` })
  await call(app, alice.token, { method: 'POST', url: '/change_password', payload: { old_password: PASSWORD, new_password: 'SECRET-NEW-PASSWORD' } })
  // what a careless log call elsewhere would write
  app.log.info({ password: PASSWORD, token: alice.token, body: { sender_blob: 'SECRET-SENDER-BLOB', new_password: 'SECRET-NEW-PASSWORD' }, req: { headers: { authorization: `Bearer ${bob.token}`, Cookie: `session=${bob.token}` }, query: { token: alice.token }, body: { password: PASSWORD } } }, 'careless')
  app.log.info({ headers: { authorization: `Bearer ${bob.token}` }, encrypted_blob: 'SECRET-RECIPIENT-BLOB', public_key: 'SECRET-PUBLIC-KEY' }, 'careless too')

  const output = lines.join('\n')
  const completed = lines.filter(line => JSON.parse(line).msg === 'request completed')
  t.ok(completed.length >= 12, `${completed.length} requests logged (12 made)`)
  for (const secret of secrets) t.notOk(output.includes(secret), `${secret.slice(0, 12)}... is not logged`)
  t.match(output, /\[redacted\]/)
  const careless = lines.map(line => JSON.parse(line)).find(entry => entry.msg === 'careless')
  t.equal(careless.password, '[redacted]')
  t.equal(careless.body.sender_blob, '[redacted]')
  t.equal(careless.req.headers.authorization, '[redacted]')
  t.equal(careless.req.headers.Cookie, '[redacted]', 'a header in any case')
  t.same([careless.req.query.token, careless.req.body.password], ['[redacted]', '[redacted]'])
  t.match(output, /\/ws\?token=\[redacted\]&x=1/, 'the request line keeps its shape')
})

t.test('a NUL in a key or a blob is a 400 naming the field, on every database (PostgreSQL text cannot hold it)', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  const key = await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'abc\u0000def' } })
  isError(t, key, 400, 'VALIDATION_ERROR')
  t.match(key.json().message, /public_key/)
  for (const field of ['sender_blob', 'recipient_blob']) {
    const payload = { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r', [field]: '\u0000' }
    const res = await call(app, alice.token, { method: 'POST', url: '/send_message', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, new RegExp(field))
  }
  const fine = await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 'ünïcødé 🙂 \t\n', recipient_blob: 'r' } })
  t.equal(fine.statusCode, 201, 'any other text is fine')
  t.equal((await app.db.selectFrom('public_keys').select('user_id').execute()).length, 0)
})
