import t, { type Test } from 'tap'
import { admin, adminEnv, adminJson } from '../fixtures/admin.js'
import { befriend, build, call, isError, login, rowCounts, snapshot, user } from '../helper.js'

// Every command of the admin CLI, in-process, against the database an app is serving
// (as with a server running): its output, its errors and its exit codes.

async function populated (t: Test) {
  const env = await adminEnv(t)
  const app = await build(t, env)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'Bob', token: await user(app, 'Bob') }
  const carol = { name: 'carol', token: await user(app, 'carol') }
  await befriend(app, alice, bob)
  await call(app, carol.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'alice-public-key' } })
  for (const [from, to] of [[alice, bob], [bob, alice], [alice, bob]] as const) {
    const res = await call(app, from.token, { method: 'POST', url: '/send_message', payload: { recipient_username: to.name, sender_blob: 'S'.repeat(10), recipient_blob: 'R'.repeat(20) } })
    t.equal(res.statusCode, 201)
  }
  return { env, app, alice, bob, carol }
}

t.test('stats: counts, size and messages per day, as text and as JSON', async t => {
  const { env } = await populated(t)
  const stats = await adminJson(env, 'stats', '--days', '3')
  t.match(stats, { users: 3, disabled_users: 0, public_keys: 1, contacts: 1, pending_requests: 1, messages: 3 })
  t.ok(stats.database_bytes > 0)
  const today = new Date().toISOString().slice(0, 10)
  t.equal(stats.messages_per_day.length, 3)
  t.same(stats.messages_per_day[2], { day: today, messages: 3 })
  t.equal(stats.messages_per_day[0].messages, 0)
  const text = await admin(env, 'stats')
  t.equal(text.code, 0)
  t.match(text.out, /users\s+3 \(0 disabled\)\npublic keys\s+1\ncontacts\s+1\npending requests\s+1\nmessages\s+3\ndatabase size\s+[0-9.]+ (KiB|MiB)/)
  t.match(text.out, new RegExp(`${today}\\s+3`))
  t.equal((await admin(env, 'stats', '--days', '0')).code, 2)
  t.equal((await admin(env, 'stats', '--days', '367')).code, 2)
})

t.test('users: search, pages, JSON', async t => {
  const { env } = await populated(t)
  const all = await adminJson(env, 'users')
  t.same(all.items.map((u: any) => u.username), ['alice', 'Bob', 'carol'])
  t.match(all.items[0], { has_key: true, messages: 3, disabled_at: null, created_at: /^\d{4}-\d\d-\d\dT/ })
  t.match(all.items[2], { has_key: false, messages: 0 })
  t.match(all, { page: 1, per_page: 50, total: 3 })
  t.same((await adminJson(env, 'users', '--search', 'O')).items.map((u: any) => u.username), ['Bob', 'carol'], 'case-insensitive')
  t.same((await adminJson(env, 'users', '--search', '%')).items, [], 'LIKE wildcards are taken literally')
  t.same((await adminJson(env, 'users', '--search', '_')).items, [])
  const second = await adminJson(env, 'users', '--per-page', '2', '--page', '2')
  t.match(second, { page: 2, per_page: 2, total: 3 })
  t.same(second.items.map((u: any) => u.username), ['carol'])
  const text = await admin(env, 'users', '--per-page', '2')
  t.match(text.out, /^id\s+username\s+created\s+disabled\s+key\s+messages\n\d+\s+alice\s+\S+\s+-\s+yes\s+3\n/)
  t.match(text.out, /page 1 of 2 \(3 users\)$/)
  t.match((await admin(env, 'users', '--search', 'zzz')).out, /^\(none\)\npage 1 of 1 \(0 users\)$/)
  for (const bad of [['--page', '0'], ['--page', 'x'], ['--per-page', '501'], ['--page', '1e3'], ['--nope'], ['extra']]) {
    const res = await admin(env, 'users', ...bad)
    t.equal(res.code, 2, bad.join(' '))
    t.match(res.err, /^error: .+\nusage: npm run admin -- users/)
  }
})

t.test('user: fingerprint, contacts, counts; never a key, blob or hash', async t => {
  const { env } = await populated(t)
  const alice = await adminJson(env, 'user', 'ALICE')
  t.match(alice, {
    username: 'alice',
    key_fingerprint: /^([0-9a-f]{4}:){15}[0-9a-f]{4}$/,
    contacts: ['Bob'],
    requests_sent_pending: 0,
    requests_received_pending: 1,
    messages_sent: 2,
    messages_received: 1,
    disabled_at: null
  })
  const text = await admin(env, 'user', 'alice')
  t.match(text.out, /key fingerprint\s+[0-9a-f:]{79}\n.*\ncontacts\s+Bob\n/)
  for (const output of [JSON.stringify(alice), text.out]) {
    t.notMatch(output, /alice-public-key|SSSS|RRRR|argon2/)
  }
  t.match((await adminJson(env, 'user', 'carol')), { key_fingerprint: null, contacts: [], requests_sent_pending: 1 })
  const missing = await admin(env, 'user', 'nobody')
  t.equal(missing.code, 1)
  t.equal(missing.err, "error: no user named 'nobody'")
  t.equal((await admin(env, 'user')).code, 2)
})

t.test('disable-user and enable-user act through the API at once, and are audited', async t => {
  const { env, app, bob } = await populated(t)
  const res = await admin(env, 'disable-user', 'bob')
  t.equal(res.code, 0)
  t.equal(res.out, "disabled 'bob'")
  isError(t, await call(app, bob.token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_DISABLED')
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'Bob', password: 'correct horse battery' } }), 401, 'INVALID_CREDENTIALS')
  t.match(await adminJson(env, 'user', 'Bob'), { disabled_at: /^\d{4}-/ })
  t.equal((await admin(env, 'disable-user', 'Bob')).out, "'Bob' was already disabled")
  t.match(await adminJson(env, 'stats'), { disabled_users: 1 })

  t.same(await adminJson(env, 'enable-user', 'Bob'), { username: 'Bob', enabled: true, changed: true })
  t.equal((await call(app, bob.token, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'its tokens work again')
  t.ok(await login(app, 'Bob'))
  t.equal((await admin(env, 'enable-user', 'Bob')).out, "'Bob' was already enabled")

  const audit = await adminJson(env, 'audit')
  t.equal(audit.total, 2, 'no-ops are not recorded')
  t.match(audit.items, [{ action: 'enable-user', target: 'Bob', actor: /^cli/ }, { action: 'disable-user', target: 'Bob' }])
  const text = await admin(env, 'audit')
  t.match(text.out, /^when\s+who\s+action\s+target\s+detail\n\S+\s+cli\S*\s+enable-user\s+Bob\s+-\n/)

  for (const command of ['disable-user', 'enable-user']) {
    const missing = await admin(env, command, 'nobody')
    t.equal(missing.code, 1)
    t.match(missing.err, /no user named 'nobody'/)
    t.equal((await admin(env, command)).code, 2)
  }
})

t.test('delete-user asks for --yes, then erases the user as delete_account does', async t => {
  const { env, app, alice, bob } = await populated(t)
  const before = await snapshot(app)
  const counts = await rowCounts(app)
  const unconfirmed = await admin(env, 'delete-user', 'alice')
  t.equal(unconfirmed.code, 2)
  t.match(unconfirmed.err, /erases 'alice' with their key, requests and 3 messages .*--yes/)
  t.same(await snapshot(app), before)

  const res = await admin(env, 'delete-user', 'alice', '--yes')
  t.equal(res.code, 0)
  t.equal(res.out, "deleted 'alice'")
  isError(t, await call(app, alice.token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_GONE')
  t.same((await call(app, bob.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
  // Bob's 5 events (a request, an acceptance, 3 messages) named alice and go with hers; Bob and carol (who had asked
  // alice) get a contact_deleted each; one audit entry, under an opaque id
  t.same(await rowCounts(app), { ...counts, users: 2, devices: 2, public_keys: 0, chat_requests: 0, messages: 0, events: 2, admin_audit: counts.admin_audit! + 1 })
  t.match((await adminJson(env, 'audit')).items, [{ action: 'delete-user', target: /^erased:[A-Za-z0-9_-]{12}$/ }])

  const again = await admin(env, 'delete-user', 'alice', '--yes')
  t.equal(again.code, 1)
  t.match(again.err, /no user named 'alice'/)
})

t.test('requests: pending by default, by status and by user', async t => {
  const { env } = await populated(t)
  const pending = await adminJson(env, 'requests')
  t.match(pending, { total: 1, items: [{ requester: 'carol', requested: 'alice', status: 'pending', created_at: /^\d{4}-/ }] })
  t.equal((await adminJson(env, 'requests', '--status', 'all')).total, 2)
  t.match((await adminJson(env, 'requests', '--status', 'accepted')).items, [{ requester: 'alice', requested: 'Bob', status: 'accepted' }])
  t.equal((await adminJson(env, 'requests', '--status', 'all', '--user', 'bob')).total, 1)
  t.match((await admin(env, 'requests')).out, /^id\s+requester\s+requested\s+status\s+created\s+updated\n\d+\s+carol\s+alice\s+pending\s/)
  const badStatus = await admin(env, 'requests', '--status', 'blocked')
  t.equal(badStatus.code, 2)
  t.match(badStatus.err, /--status must be pending, accepted or all/)
  t.equal((await admin(env, 'requests', '--user', 'nobody')).code, 1)
})

t.test('messages: metadata only, newest first, by user, since, before an id', async t => {
  const { env, app } = await populated(t)
  const all = await adminJson(env, 'messages')
  t.equal(all.items.length, 3)
  t.ok(all.items[0].id > all.items[1].id, 'newest first')
  t.same(Object.keys(all.items[0]).sort(), ['created_at', 'id', 'recipient', 'recipient_blob_length', 'sender', 'sender_blob_length'])
  t.match(all.items[0], { sender: 'alice', recipient: 'Bob', sender_blob_length: 10, recipient_blob_length: 20 })
  t.equal((await adminJson(env, 'messages', '--user', 'carol')).items.length, 0)
  t.equal((await adminJson(env, 'messages', '--limit', '1')).items.length, 1)
  t.same((await adminJson(env, 'messages', '--before-id', String(all.items[0].id))).items.map((m: any) => m.id), [all.items[1].id, all.items[2].id])
  t.equal((await adminJson(env, 'messages', '--since', '2999-01-01')).items.length, 0)
  t.equal((await adminJson(env, 'messages', '--since', '2000-01-01T00:00:00Z')).items.length, 3)
  await app.db.updateTable('messages').set({ created_at: Date.parse('2024-01-01T00:00:00Z') }).where('id', '=', all.items[2].id).execute()
  t.equal((await adminJson(env, 'messages', '--since', '2024-06-01')).items.length, 2)
  const text = await admin(env, 'messages')
  t.match(text.out, /^id\s+sender\s+recipient\s+sent\s+sender blob\s+recipient blob\n\d+\s+alice\s+Bob\s+\S+\s+10\s+20\n/)
  t.notMatch(text.out, /SSSS|RRRR/)
  t.same((await adminJson(env, 'messages', '--before-id', '9007199254740991')).items.length, 3, 'any id up to 2^53 - 1')
  for (const bad of [['--since', 'yesterday'], ['--since', '2024-13-01'], ['--limit', '1001'], ['--before-id', '-1'], ['--before-id', '9007199254740992'], ['--before-id', '1.5']]) {
    t.equal((await admin(env, 'messages', ...bad)).code, 2, bad.join(' '))
  }
  t.equal((await admin(env, 'messages', '--user', 'nobody')).code, 1)
})

t.test('help, unknown commands and bad configuration', async t => {
  const env = await adminEnv(t)
  const help = await admin(env, '--help')
  t.equal(help.code, 0)
  for (const command of ['stats', 'users', 'user NAME', 'delete-user NAME --yes', 'disable-user NAME', 'enable-user NAME', 'requests', 'messages', 'audit', 'import PATH']) {
    t.match(help.out, `  ${command}`)
  }
  t.equal((await admin(env, 'help')).code, 0)
  const none = await admin(env)
  t.equal(none.code, 2)
  t.match(none.err, /^usage: /)
  const unknown = await admin(env, 'drop-everything')
  t.equal(unknown.code, 2)
  t.match(unknown.err, /unknown command 'drop-everything'/)
  const config = await admin({ DATABASE_URL: 'mysql://nope' }, 'stats')
  t.equal(config.code, 78)
  t.match(config.err, /Invalid configuration:\n\s+DATABASE_URL=/)
})
