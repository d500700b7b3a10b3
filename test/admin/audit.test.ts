import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { befriend, bearer, build, call, isError, user } from '../helper.js'

// What the admin API writes to admin_audit beside the operator's actions: each read-only view
// (what was asked, never what it showed), and each failed admin token, bounded per address.

const TOKEN = randomBytes(32).toString('base64url')
const admin = bearer(TOKEN)

async function auditRows (app: FastifyInstance) {
  return await app.db.selectFrom('admin_audit').select(['actor', 'action', 'target', 'detail']).orderBy('id').execute()
}

t.test('each console view writes one audit row naming what was viewed, never what it showed', async t => {
  const app = await build(t, { ADMIN_TOKEN: TOKEN })
  const alice = { name: 'alice', token: await user(app, 'alice') }
  await befriend(app, alice, { name: 'bob', token: await user(app, 'bob') })
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'alice-public-key' } })
  await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 'SECRET-S', recipient_blob: 'SECRET-R' } })
  const views: Array<[string, Record<string, unknown>]> = [
    ['/users?search=li', { action: 'view-users', target: null, detail: 'search=li page=1 per_page=50' }],
    // a setting the route does not declare is not written down (a NUL in it failed the insert on PostgreSQL)
    ['/users?search=li&username=alice%00', { action: 'view-users', target: null, detail: 'search=li page=1 per_page=50' }],
    ['/users/ALICE', { action: 'view-user', target: 'alice', detail: null }],
    ['/requests?status=all&user=bob', { action: 'view-requests', target: 'bob', detail: 'status=all page=1 per_page=50' }],
    ['/messages?user=alice&limit=10', { action: 'view-messages', target: 'alice', detail: 'limit=10' }],
    ['/audit?page=1', { action: 'view-audit', target: null, detail: 'page=1 per_page=50' }]
  ]
  for (const [url, row] of views) {
    t.equal((await app.inject({ method: 'GET', url: `/admin/api${url}`, headers: admin })).statusCode, 200, url)
    t.match((await auditRows(app)).at(-1), { actor: 'console:127.0.0.1', ...row }, url)
  }
  const before = (await auditRows(app)).length
  t.equal((await app.inject({ method: 'GET', url: '/admin/api/stats', headers: admin })).statusCode, 200)
  isError(t, await app.inject({ method: 'GET', url: '/admin/api/users/nobody', headers: admin }), 404, 'USER_NOT_FOUND')
  isError(t, await app.inject({ method: 'GET', url: '/admin/api/users?page=0', headers: admin }), 400)
  t.equal((await auditRows(app)).length, before, 'stats (counts only), a view of nobody and a refused view write nothing')
  t.notMatch(JSON.stringify(await auditRows(app)), /SECRET|alice-public-key|argon2/, 'no blob, key or hash in the audit log')
})

t.test('wrong admin tokens: audited one by one, then 429 per address with one row per refused burst, freed after the window', async t => {
  const app = await build(t, { ADMIN_TOKEN: TOKEN, RATE_LIMIT: 'on', RATE_LIMIT_ADMIN_FAILURES: '3/3s' })
  const attempt = async (headers: Record<string, string>, remoteAddress = '203.0.113.7') =>
    await app.inject({ method: 'GET', url: '/admin/api/users', headers, remoteAddress })
  for (let i = 0; i < 3; i++) isError(t, await attempt(bearer(`wrong-${i}`)), 401, 'ADMIN_UNAUTHORIZED')
  t.equal((await auditRows(app)).length, 3, 'each failure below the limit is a row')
  const refused = await attempt(admin)
  isError(t, refused, 429, 'RATE_LIMITED')
  t.match(refused.json().message, /^Rate limit exceeded, retry in \d+ seconds$/)
  t.ok(Number(refused.headers['retry-after']) > 0, 'retry-after in seconds')
  for (let i = 0; i < 20; i++) isError(t, await attempt(bearer(`guess-${i}`)), 429, 'RATE_LIMITED')
  const rows = await auditRows(app)
  t.equal(rows.length, 4, 'the burst of 21 refusals is one row')
  t.match(rows, [
    { actor: 'console:203.0.113.7', action: 'admin-token-failed', target: null, detail: 'GET /admin/api/users; wrong token' },
    {}, {},
    { actor: 'console:203.0.113.7', action: 'admin-token-refused', detail: /^GET \/admin\/api\/users; further attempts from this address refused for \d+ s$/ }
  ])
  t.equal((await attempt(admin, '198.51.100.9')).statusCode, 200, 'another address is not affected')
  await sleep(3100)
  t.equal((await attempt(admin)).statusCode, 200, 'after the window the address is let in again')
})
