import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../../config.js'
import { befriend, bearer, build, call, isError, rowCounts, snapshot, user } from '../helper.js'

// The admin JSON API (/admin/api) and the console's files (/admin), through app.inject().

const TOKEN = randomBytes(32).toString('base64url')
const admin = bearer(TOKEN)

async function setup (t: Test) {
  const app = await build(t, { ADMIN_TOKEN: TOKEN })
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'alice-public-key' } })
  await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 'SECRET-S', recipient_blob: 'SECRET-R' } })
  return { app, alice, bob }
}

t.test('without ADMIN_TOKEN there is no console and no admin API', async t => {
  const app = await build(t)
  for (const url of ['/admin', '/admin/console.js', '/admin/api/stats', '/admin/api/users']) {
    isError(t, await app.inject({ method: 'GET', url, headers: bearer('x'.repeat(40)) }), 404, 'ROUTE_NOT_FOUND')
  }
})

t.test('ADMIN_TOKEN must be long and varied; its value is never echoed', async t => {
  for (const weak of ['short', 'a'.repeat(64), 'abcabcabcabcabcabcabcabcabcabcabcabc']) {
    const error = t.throws(() => loadConfig({ ADMIN_TOKEN: weak })) as unknown as ConfigError
    t.type(error, ConfigError)
    t.match(error.message, /ADMIN_TOKEN: too weak; use at least 32 random characters/)
    t.notMatch(error.message, weak)
  }
  t.equal(loadConfig({ ADMIN_TOKEN: TOKEN }).adminToken, TOKEN)
  t.equal(loadConfig({}).adminToken, undefined)
})

t.test('the console page, script and stylesheet, under a strict CSP', async t => {
  const { app } = await setup(t)
  const page = await app.inject({ method: 'GET', url: '/admin' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'none'; script-src 'self'/)
  t.match(page.body, /<label for="token">Admin token<\/label>/)
  t.notMatch(page.body, /<script>|style=|onclick=/, 'no inline code, so the CSP needs no exceptions')
  t.equal((await app.inject({ method: 'GET', url: '/admin/' })).statusCode, 200)
  const script = await app.inject({ method: 'GET', url: '/admin/console.js' })
  t.match(script.headers['content-type'], /^text\/javascript/)
  t.match(script.body, /sessionStorage/)
  t.notMatch(script.body, /document\.cookie|innerHTML/)
  t.match((await app.inject({ method: 'GET', url: '/admin/console.css' })).headers['content-type'], /^text\/css/)
})

t.test('every admin API call needs the exact token as a bearer header; each failure is audited', async t => {
  const { app, alice } = await setup(t)
  const { admin_audit: _audit, ...before } = await snapshot(app)
  const attempts: Array<Record<string, string>> = [
    {}, { authorization: '' }, { authorization: 'Bearer' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` },
    { authorization: `Bearer ${TOKEN.slice(0, -1)}` }, { authorization: `Bearer ${TOKEN} extra` }, bearer(alice.token), { 'x-admin-token': TOKEN },
    { cookie: `token=${TOKEN}` }
  ]
  for (const headers of attempts) {
    for (const [method, url] of [['GET', '/admin/api/stats'], ['POST', '/admin/api/users/alice/disable'], ['DELETE', '/admin/api/users/alice']] as const) {
      const res = await app.inject({ method, url, headers })
      isError(t, res, 401, 'ADMIN_UNAUTHORIZED')
      t.equal(res.headers['www-authenticate'], 'Bearer realm="admin"')
    }
  }
  const { admin_audit: _after, ...after } = await snapshot(app)
  t.same(after, before, 'nothing but the audit log changed')
  const rows = await app.db.selectFrom('admin_audit').selectAll().orderBy('id').execute()
  t.equal(rows.length, attempts.length * 3, 'one audit row per failed attempt')
  t.match(rows[0], { actor: 'console:127.0.0.1', action: 'admin-token-failed', target: null, detail: 'GET /admin/api/stats; no token' })
  t.match(rows[2], { action: 'admin-token-failed', detail: 'DELETE /admin/api/users/:username; no token' })
  t.match(rows[4 * 3], { action: 'admin-token-failed', detail: 'GET /admin/api/stats; wrong token' }, 'Bearer <token>x')
  for (const row of rows) t.notMatch(JSON.stringify(row), TOKEN.slice(0, 12), 'no part of a token sent is stored')
  t.equal((await call(app, alice.token, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'alice untouched')
  const ok = await app.inject({ method: 'GET', url: '/admin/api/stats', headers: admin })
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers['cache-control'], 'no-store')
})

t.test('stats, users, user, requests, messages: metadata, never a key, blob or hash', async t => {
  const { app } = await setup(t)
  const get = async (url: string) => await app.inject({ method: 'GET', url: `/admin/api${url}`, headers: admin })
  t.match((await get('/stats?days=2')).json(), { users: 2, public_keys: 1, contacts: 1, pending_requests: 0, messages: 1, messages_per_day: [{}, { messages: 1 }] })
  const users = (await get('/users?search=LI')).json()
  t.match(users, { page: 1, per_page: 50, total: 1, items: [{ username: 'alice', has_key: true, messages: 1, disabled_at: null }] })
  const detail = (await get('/users/ALICE')).json()
  t.match(detail, { username: 'alice', contacts: ['bob'], messages_sent: 1, key_fingerprint: /^[0-9a-f:]+$/ })
  t.match((await get('/requests?status=accepted')).json(), { total: 1, items: [{ requester: 'alice', requested: 'bob', status: 'accepted' }] })
  t.match((await get('/requests')).json(), { total: 0, items: [] })
  t.match((await get('/requests?status=all&user=bob')).json(), { total: 1 })
  const messages = (await get('/messages?user=bob&since=2020-01-01')).json()
  t.match(messages, { items: [{ sender: 'alice', recipient: 'bob', sender_blob_length: 8, recipient_blob_length: 8 }] })
  t.same((await get(`/messages?before_id=${messages.items[0].id as number}`)).json(), { items: [] })
  for (const url of ['/stats', '/users', '/users/alice', '/requests?status=all', '/messages', '/audit']) {
    t.notMatch((await get(url)).body, /SECRET|alice-public-key|argon2/, url)
  }
})

t.test('bad inputs are 400s naming the problem; unknown users 404; nothing changes', async t => {
  const { app } = await setup(t)
  const before = await snapshot(app)
  const cases: Array<[string, string, RegExp]> = [
    ['GET', '/stats?days=0', /days/], ['GET', '/stats?days=1e999', /days/], ['GET', '/users?page=0', /page/], ['GET', '/users?per_page=501', /per_page/],
    ['GET', `/users?search=${'x'.repeat(65)}`, /search/], ['GET', '/users?search=a%00b', /search/], ['GET', '/users/a', /username/], ['GET', '/users/bad%20name', /username/],
    ['POST', '/users/x@y/disable', /username/], ['DELETE', `/users/${'a'.repeat(33)}`, /username/], ['GET', '/requests?status=blocked', /status/],
    ['GET', '/requests?user=a', /user/], ['GET', '/messages?limit=1001', /limit/], ['GET', '/messages?before_id=-1', /before_id/],
    ['GET', '/messages?before_id=99999999999999999999', /before_id/], ['GET', '/messages?since=yesterday', /'since' must be a date/],
    ['GET', '/messages?since=2024-02-30', /'since' must be a date/], ['GET', '/audit?page=-1', /page/]
  ]
  for (const [method, url, message] of cases) {
    const res = await app.inject({ method, url: `/admin/api${url}`, headers: admin })
    isError(t, res, 400)
    t.match(res.json().message, message, url)
  }
  for (const [method, url] of [['GET', '/users/nobody'], ['POST', '/users/nobody/disable'], ['POST', '/users/nobody/enable'], ['DELETE', '/users/nobody'],
    ['GET', '/requests?user=nobody'], ['GET', '/messages?user=nobody']] as const) {
    const res = await app.inject({ method, url: `/admin/api${url}`, headers: admin })
    isError(t, res, 404, 'USER_NOT_FOUND')
    t.match(res.json().message, /'nobody' not found/)
  }
  t.same(await snapshot(app), before)
  t.equal((await app.inject({ method: 'GET', url: '/admin/api/audit', headers: admin })).json().total, 0)
})

t.test('disable, enable and delete act at once on the user\'s tokens, and are audited', async t => {
  const { app, alice, bob } = await setup(t)
  const post = async (url: string) => await app.inject({ method: 'POST', url: `/admin/api${url}`, headers: admin })
  t.same((await post('/users/Alice/disable')).json(), { username: 'Alice', action: 'disable-user', changed: true })
  isError(t, await call(app, alice.token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_DISABLED')
  t.same((await post('/users/alice/disable')).json(), { username: 'alice', action: 'disable-user', changed: false })
  t.match((await app.inject({ method: 'GET', url: '/admin/api/users', headers: admin })).json().items[0], { username: 'alice', disabled_at: /^\d{4}-/ })
  t.same((await post('/users/alice/enable')).json(), { username: 'alice', action: 'enable-user', changed: true })
  t.equal((await call(app, alice.token, { method: 'GET', url: '/get_contacts' })).statusCode, 200)

  const deleted = await app.inject({ method: 'DELETE', url: '/admin/api/users/alice', headers: admin })
  t.same(deleted.json(), { username: 'alice', action: 'delete-user', changed: true })
  isError(t, await call(app, alice.token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_GONE')
  t.same((await call(app, bob.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
  t.match(await rowCounts(app), { users: 1, public_keys: 0, chat_requests: 0, messages: 0 })

  const audit = (await app.inject({ method: 'GET', url: '/admin/api/audit?per_page=2', headers: admin })).json()
  // disable, the users view, enable, delete (this view is written down after it was read); the audit names the
  // erased user by an opaque id, in the earlier rows too
  t.match(audit, { total: 4, per_page: 2, items: [{ action: 'delete-user', target: /^erased:/, actor: 'console:127.0.0.1' }, { action: 'enable-user', target: audit.items[0].target }] })
})

t.test('OpenAPI lists the admin API under its tag and security scheme, not the console\'s files', async t => {
  const { app } = await setup(t)
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.match(doc.components.securitySchemes.adminToken, { type: 'http', scheme: 'bearer' })
  t.ok(doc.tags.some((tag: { name: string }) => tag.name === 'admin'))
  const paths = Object.keys(doc.paths).filter(path => path.startsWith('/admin'))
  t.same(paths.sort(), ['/admin/api/audit', '/admin/api/messages', '/admin/api/requests', '/admin/api/stats', '/admin/api/users',
    '/admin/api/users/{username}', '/admin/api/users/{username}/disable', '/admin/api/users/{username}/enable'])
  for (const path of paths) {
    for (const operation of Object.values(doc.paths[path]) as Array<{ tags: string[], security: unknown, responses: Record<string, unknown> }>) {
      t.same(operation.tags, ['admin'])
      t.same(operation.security, [{ adminToken: [] }])
      t.ok(operation.responses['401'], `${path} documents its 401`)
    }
  }
})
