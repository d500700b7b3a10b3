import { join } from 'node:path'
import { hash } from '@node-rs/argon2'
import t from 'tap'
import { admin, adminEnv, adminJson, tempDir } from '../fixtures/admin.js'
import { werkzeugMethodsInUse } from '../../db/import-original.js'
import { werkzeugPbkdf2, werkzeugScrypt, writeOriginal } from '../fixtures/original.js'
import { bearer, build, call, isError, register, rowCounts, snapshot, user } from '../helper.js'

// The move from the original server: a chat_server.db built here with the original's schema
// and Werkzeug hashes, imported by the CLI into the database an app is serving.

const ALICE_PASSWORD = 'alice old pw'
const BOB_PASSWORD = 'short' // the original had no minimum length

function original (dir: string): string {
  const file = join(dir, 'chat_server.db')
  writeOriginal(file, {
    users: [
      [1, 'alice', werkzeugPbkdf2(ALICE_PASSWORD, 'saltAlice0123456', 1000)],
      [2, 'Bob', werkzeugScrypt(BOB_PASSWORD, 'saltBob')],
      [3, 'carol', werkzeugPbkdf2('carol pw', 'c', 1000)],
      [4, 'BOB', werkzeugPbkdf2('look-alike', 's', 1000)], // differs from Bob only in case
      [5, 'd@ve!', werkzeugPbkdf2('dave pw', 's', 1000)], // a character the new rules refuse
      [6, 'erin', werkzeugPbkdf2('erin pw', 's', 1000)]
    ],
    keys: [[1, 'alice-key'], [2, 'bob-key'], [4, 'look-alike-key'], [5, 'dave-key']],
    requests: [
      [1, 1, 2, 'accepted'], // alice -> Bob accepted ...
      [2, 2, 1, 'pending'], // ... and its mirror: one accepted pair
      [3, 3, 1, 'pending'], // carol -> alice pending
      [4, 4, 1, 'accepted'], // the look-alike: skipped with its user
      [5, 6, 6, 'pending'], // to oneself
      [6, 6, 1, 'blocked'], // no such status here
      [7, 3, 2, 'pending'], // carol -> Bob and Bob -> carol, both pending: asking someone who asked you accepts
      [8, 2, 3, 'pending']
    ],
    messages: [
      [1, 1, 2, 'm1 for alice', 'm1 for bob', '2024-01-01 10:00:00'],
      [2, 2, 1, 'm2 for bob', 'm2 for alice', '2024-01-01 10:00:00'], // same second: order by id
      [3, 1, 2, 'm3 for alice', 'm3 for bob', '2024-01-01 09:59:59.500000+00:00'], // clock went back
      [4, 4, 1, 'from the look-alike', 'x', '2024-01-02T00:00:00Z'],
      [5, 1, 3, 'm5 for alice', 'm5 for carol', '2024-01-01T12:30:00.250+02:00'],
      [6, 3, 1, 'm6 for carol', 'm6 for alice', 'yesterday']
    ]
  })
  return file
}

async function login (app: Awaited<ReturnType<typeof build>>, username: string, password: string) {
  return await app.inject({ method: 'POST', url: '/login', payload: { username, password } })
}

t.test('every row arrives; old passwords log in and are upgraded; a second import changes nothing', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  await user(app, 'zed') // someone already on the new server
  const file = original(tempDir(t))

  const report = await adminJson(env, 'import', file)
  t.same(report.users, {
    imported: 4,
    already_imported: 0,
    skipped: [
      { original_id: 4, username: 'BOB', reason: "differs only in case from 'Bob' (original id 2), which is kept" },
      { original_id: 5, username: 'd@ve!', reason: 'name breaks the rules: 3 to 32 characters of a-z 0-9 _ . -' }
    ]
  })
  t.same(report.public_keys, { imported: 2, kept_existing: 0, skipped_with_user: 2, skipped: [] })
  t.same(report.chat_requests, {
    pairs_imported: 3,
    pairs_accepted_now: 0,
    already_imported: 0,
    mirrors_merged: 2,
    skipped_with_user: 1,
    skipped: [{ original_id: 5, reason: 'a request to oneself' }, { original_id: 6, reason: "status 'blocked' has no equivalent here" }]
  })
  t.same(report.messages, { imported: 5, already_imported: 0, skipped_with_user: 1, unreadable_timestamps: 1, skipped: [] })
  const after = await rowCounts(app)

  // the old passwords work; stored wrapped in Argon2id at import, never the Werkzeug digest itself;
  // the stored hash becomes native Argon2id on the first login
  const hashOf = async (name: string) => (await app.db.selectFrom('users').select('password_hash').where('username', '=', name).executeTakeFirstOrThrow()).password_hash
  const aliceOriginal = werkzeugPbkdf2(ALICE_PASSWORD, 'saltAlice0123456', 1000)
  const wrapped = await hashOf('alice')
  t.match(wrapped, /^\$cc-wrapped\$pbkdf2:sha256:1000\$saltAlice0123456\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  t.notOk(wrapped.includes(aliceOriginal.split('$')[2]!), 'the Werkzeug digest is not stored')
  t.match(await hashOf('Bob'), /^\$cc-wrapped\$scrypt:1024:8:1\$saltBob\$argon2id\$/)
  t.same(await werkzeugMethodsInUse(app.db), ['pbkdf2:sha256:1000', 'scrypt:1024:8:1'], 'every login pays one derivation of each method imported users have, most common first')
  isError(t, await login(app, 'alice', 'wrong password'), 401, 'INVALID_CREDENTIALS')
  t.equal(await hashOf('alice'), wrapped, 'a failed login does not touch the hash')
  const alice = await login(app, 'ALICE', ALICE_PASSWORD)
  t.equal(alice.statusCode, 200)
  t.match(await hashOf('alice'), /^\$argon2id\$/)
  t.equal((await login(app, 'alice', ALICE_PASSWORD)).statusCode, 200, 'and logs in with the upgraded hash')
  const bob = await login(app, 'bob', BOB_PASSWORD)
  t.equal(bob.statusCode, 200, 'scrypt too')
  t.match(await hashOf('Bob'), /^\$argon2id\$/)
  isError(t, await login(app, 'BOB', 'look-alike'), 401, 'INVALID_CREDENTIALS')
  const aliceToken = alice.json().token
  const bobToken = bob.json().token

  // keys, contacts, requests
  t.same((await call(app, aliceToken, { method: 'GET', url: '/get_key?username=bob' })).json(), { username: 'Bob', public_key: 'bob-key' })
  t.same((await call(app, aliceToken, { method: 'GET', url: '/get_contacts' })).json(), { contacts: ['Bob'] })
  t.same((await call(app, bobToken, { method: 'GET', url: '/get_contacts' })).json().contacts, ['alice', 'carol'])
  t.same((await call(app, aliceToken, { method: 'GET', url: '/get_chat_requests' })).json().pending_requests.map((r: any) => r.requester_username), ['carol'])

  // messages: original order, each party its own copy, original times (UTC)
  const conversation = (await call(app, aliceToken, { method: 'GET', url: '/get_messages?username=Bob' })).json().messages
  t.same(conversation.map((m: any) => [m.encrypted_blob, m.timestamp]), [
    ['m1 for alice', '2024-01-01T10:00:00.000Z'],
    ['m2 for alice', '2024-01-01T10:00:00.000Z'],
    ['m3 for alice', '2024-01-01T09:59:59.500Z']
  ])
  t.ok(conversation[0].id < conversation[1].id && conversation[1].id < conversation[2].id)
  t.same((await call(app, bobToken, { method: 'GET', url: '/get_messages?username=alice' })).json().messages.map((m: any) => m.encrypted_blob),
    ['m1 for bob', 'm2 for bob', 'm3 for bob'])
  const withCarol = (await call(app, aliceToken, { method: 'GET', url: '/get_messages?username=carol' })).json().messages
  t.same(withCarol.map((m: any) => m.encrypted_blob), ['m5 for alice', 'm6 for alice'], 'not contacts yet (pending), yet the history came over')
  t.equal(withCarol[0].timestamp, '2024-01-01T10:30:00.250Z')
  t.ok(Date.parse(withCarol[1].timestamp) > Date.parse('2026-01-01'), 'an unreadable time becomes the import time')

  // the second run adds nothing (and does not undo the upgraded hashes)
  const second = await adminJson(env, 'import', file)
  t.same(second.users, { imported: 0, already_imported: 4, skipped: report.users.skipped })
  t.same(second.public_keys, { imported: 0, kept_existing: 2, skipped_with_user: 2, skipped: [] })
  t.match(second.chat_requests, { pairs_imported: 0, pairs_accepted_now: 0, already_imported: 3 })
  t.match(second.messages, { imported: 0, already_imported: 5 })
  t.same(await rowCounts(app), { ...after, admin_audit: after.admin_audit! + 1 }, 'nothing but its own audit entry')
  t.match(await hashOf('alice'), /^\$argon2id\$/)

  const audit = await adminJson(env, 'audit')
  t.equal(audit.total, 2)
  t.match(audit.items[1], { action: 'import', target: null, detail: /4 users \(2 skipped\), 2 keys, 3 chat pairs.*5 messages/ })
  t.match(audit.items[0], { action: 'import', detail: /0 users \(2 skipped\).*0 messages/ })
  t.match(audit.items[0].actor, /^cli/)
})

t.test('rows added to the original after a first import come over on the next; erased users stay erased', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  const dir = tempDir(t)
  const file = join(dir, 'chat_server.db')
  writeOriginal(file, {
    users: [[1, 'alice', werkzeugPbkdf2('pw', 's')], [2, 'bob', werkzeugPbkdf2('pw', 's')], [3, 'carol', werkzeugPbkdf2('pw', 's')]],
    requests: [[1, 1, 2, 'pending'], [2, 2, 3, 'pending']],
    messages: [[1, 1, 2, 'a', 'b', '2024-01-01 10:00:00']]
  })
  await adminJson(env, 'import', file)
  t.equal((await admin(env, 'delete-user', 'carol', '--yes')).code, 0)
  writeOriginal(file, {
    users: [[4, 'dave', werkzeugPbkdf2('pw', 's')]],
    keys: [[4, 'dave-key']],
    requests: [[3, 2, 1, 'accepted']], // bob now accepted alice's request, in the old server
    messages: [[2, 2, 1, 'c', 'd', '2024-01-02 10:00:00']]
  })
  const report = await adminJson(env, 'import', file)
  t.same(report.users, { imported: 1, already_imported: 3, skipped: [] })
  t.same(report.public_keys, { imported: 1, kept_existing: 0, skipped_with_user: 0, skipped: [] })
  t.match(report.chat_requests, { pairs_imported: 0, pairs_accepted_now: 1, already_imported: 0, skipped_with_user: 1, mirrors_merged: 1 })
  t.match(report.messages, { imported: 1, already_imported: 1 })
  t.equal((await app.db.selectFrom('users').select('id').where('username', '=', 'carol').execute()).length, 0, 'carol was not brought back')
  const contacts = await app.db.selectFrom('chat_requests').select('status').execute()
  t.same(contacts.map(row => row.status), ['accepted'])
})

t.test('a name taken on the new server is reported and skipped with its rows; a dry run writes nothing', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  t.equal((await register(app, 'Alice')).statusCode, 201)
  const file = join(tempDir(t), 'chat_server.db')
  writeOriginal(file, {
    users: [[1, 'alice', werkzeugPbkdf2('pw', 's')], [2, 'bob', werkzeugPbkdf2('pw', 's')]],
    keys: [[1, 'k']],
    requests: [[1, 1, 2, 'accepted']],
    messages: [[1, 1, 2, 'a', 'b', '2024-01-01 10:00:00']]
  })
  const before = await snapshot(app)
  const counts = await rowCounts(app)
  const dry = await admin(env, 'import', file, '--dry-run')
  t.equal(dry.code, 0)
  t.match(dry.out, /dry run: nothing was written/)
  t.match(dry.out, /alice\s+name taken on this server by 'Alice'/)
  t.same(await snapshot(app), before)
  t.equal((await adminJson(env, 'audit')).total, 0, 'a dry run is not an action')

  const real = await admin(env, 'import', file)
  t.equal(real.code, 0)
  t.match(real.out, /users\s+1 imported, 0 already here, 1 skipped/)
  t.match(real.out, /users skipped .*\n.*\n1\s+alice\s+name taken on this server by 'Alice'/)
  t.same(await rowCounts(app), { ...counts, users: counts.users! + 1, devices: counts.devices! + 1, import_map: counts.import_map! + 1, admin_audit: counts.admin_audit! + 1 }, 'only bob (and its mapping and the audit entry): alice\'s key, request and message stay behind')
  const token = (await app.inject({ method: 'POST', url: '/login', payload: { username: 'bob', password: 'pw' } })).json().token
  t.same((await app.inject({ method: 'GET', url: '/get_contacts', headers: bearer(token) })).json(), { contacts: [] })
})

t.test('import errors: a missing file, a file that is not the original\'s, usage', async t => {
  const env = await adminEnv(t)
  const dir = tempDir(t)
  const missing = await admin(env, 'import', join(dir, 'nope.db'))
  t.equal(missing.code, 1)
  t.match(missing.err, /cannot read .*nope\.db/)
  const other = join(dir, 'other.db')
  writeOriginal(other, {})
  const SQLite = (await import('better-sqlite3')).default
  const db = new SQLite(other)
  db.exec('drop table messages; create table messages (id integer primary key, body text)')
  db.close()
  const wrong = await admin(env, 'import', other)
  t.equal(wrong.code, 1)
  t.match(wrong.err, /not a CryptaChat database: table messages lacks sender_id, recipient_id, sender_blob, recipient_blob, timestamp/)
  t.equal((await admin(env, 'import')).code, 2)
  t.equal((await admin(env, 'import', 'a', 'b')).code, 2)
})

t.test('a long history arrives whole and in order, and only once', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  const file = join(tempDir(t), 'chat_server.db')
  const count = 1234
  writeOriginal(file, {
    users: [[1, 'alice', werkzeugPbkdf2('pw', 's')], [2, 'bob', werkzeugPbkdf2('pw', 's')]],
    messages: Array.from({ length: count }, (_, i) => [i + 1, 1 + (i % 2), 2 - (i % 2), `s${i}`, `r${i}`, '2024-01-01 10:00:00'] as [number, number, number, string, string, string])
  })
  t.match((await adminJson(env, 'import', file)).messages, { imported: count })
  t.match((await adminJson(env, 'import', file)).messages, { imported: 0, already_imported: count })
  const rows = await app.db.selectFrom('messages').select('sender_blob').orderBy('id').execute()
  t.same(rows.map(row => row.sender_blob), Array.from({ length: count }, (_, i) => `s${i}`))
})

t.test('a hostile original: each refused hash, key and blob is reported without quoting it, nothing is stored for it, and the import is quick', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  const file = join(tempDir(t), 'chat_server.db')
  const digest = 'ab'.repeat(32)
  const argonWithin = await hash('argon pw', { memoryCost: 8192, timeCost: 3, parallelism: 2 })
  // parameters rewritten by hand: verifying this one would take 256 MiB and over a second
  const argonHuge = argonWithin.replace('m=8192,t=3,p=2', 'm=262144,t=8,p=1')
  const refused: Array<[number, string, string, string]> = [
    [1, 'argon_huge', argonHuge, 'password hash refused: Argon2 parameters beyond the bounds (m <= 65536 KiB, t <= 4, p <= 4, output <= 64 bytes)'],
    [2, 'plain_text', 'hunter2 in clear', 'password hash refused: plaintext or an unknown hash format'],
    [3, 'unknown_fmt', `sha512$salt$${digest}${digest}`, 'password hash refused: plaintext or an unknown hash format'],
    [4, 'pbkdf2_absurd', `pbkdf2:sha256:2000000000$salt$${digest}`, 'password hash refused: pbkdf2 iterations beyond the bound (1000000)'],
    [5, 'scrypt_huge', `scrypt:1048576:8:1$salt$${digest}${digest}`, 'password hash refused: scrypt parameters beyond the bound (128 * N * r * p <= 64 MiB)'],
    [6, 'wrapped_fake', `$cc-wrapped$pbkdf2:sha256:1000$salt${argonWithin}`, 'password hash refused: plaintext or an unknown hash format']
  ]
  const tenMegabytes = 'x'.repeat(10 * 1024 * 1024)
  writeOriginal(file, {
    users: [
      ...refused.map(([id, name, stored]) => [id, name, stored] as [number, string, string]),
      [10, 'keeper', werkzeugPbkdf2('keeper pw', 'k', 1000)],
      [11, 'friend', werkzeugPbkdf2('friend pw', 'f', 1000)],
      [12, 'argon_ok', argonWithin]
    ],
    keys: [[10, tenMegabytes], [11, 'friend\u0000key'], [12, 'argon-key'], [1, 'refused user key']],
    requests: [[1, 10, 11, 'accepted'], [2, 1, 10, 'accepted']],
    messages: [
      [1, 10, 11, tenMegabytes, 'small', '2024-01-01 10:00:00'],
      [2, 11, 10, 'small', tenMegabytes, '2024-01-01 10:00:01'],
      [3, 10, 11, '', 'empty sender copy', '2024-01-01 10:00:02'],
      [4, 10, 11, 'nul\u0000inside', 'x', '2024-01-01 10:00:03'],
      [5, 10, 11, 'kept for keeper', 'kept for friend', '2024-01-01 10:00:04'],
      [6, 2, 10, 'from a refused user', 'x', '2024-01-01 10:00:05']
    ]
  })
  const counts = await rowCounts(app)

  const started = Date.now()
  const result = await admin(env, 'import', file, '--json')
  t.comment(`hostile import took ${Date.now() - started} ms`)
  t.equal(result.code, 0)
  const report = JSON.parse(result.out)
  t.same(report.users, { imported: 3, already_imported: 0, skipped: refused.map(([id, username, , reason]) => ({ original_id: id, username, reason })) })
  t.same(report.public_keys, {
    imported: 1,
    kept_existing: 0,
    skipped_with_user: 1,
    skipped: [{ original_id: 10, reason: 'longer than MAX_KEY_LENGTH (8192)' }, { original_id: 11, reason: 'holds a NUL character' }]
  })
  t.same(report.messages, {
    imported: 1,
    already_imported: 0,
    skipped_with_user: 1,
    unreadable_timestamps: 0,
    skipped: [
      { original_id: 1, reason: 'sender_blob: longer than MAX_BLOB_LENGTH (65536)' },
      { original_id: 2, reason: 'recipient_blob: longer than MAX_BLOB_LENGTH (65536)' },
      { original_id: 3, reason: 'sender_blob: empty' },
      { original_id: 4, reason: 'sender_blob: holds a NUL character' }
    ]
  })
  for (const [, , stored] of refused) t.notOk(result.out.includes(stored) || result.err.includes(stored), 'the report never quotes a hash')
  const human = await admin(env, 'import', file, '--dry-run')
  t.match(human.out, /plain_text\s+password hash refused: plaintext or an unknown hash format/)
  t.match(human.out, /messages skipped:\noriginal id\s+reason\n1\s+sender_blob: longer than MAX_BLOB_LENGTH \(65536\)/)
  t.notOk(human.out.includes('hunter2'))

  // nothing of the refused: three users, one key, one message (and their mappings, the audit entry)
  t.same((await app.db.selectFrom('users').select('username').orderBy('username').execute()).map(row => row.username), ['argon_ok', 'friend', 'keeper'])
  t.same(await rowCounts(app), {
    ...counts, users: 3, devices: 3, public_keys: 1, chat_requests: 1, messages: 1, import_map: counts.import_map! + 4, admin_audit: counts.admin_audit! + 1
  })
  const stored = await app.db.selectFrom('users').select('password_hash').execute()
  t.notOk(stored.some(row => row.password_hash.startsWith('pbkdf2:') || row.password_hash.startsWith('scrypt:')), 'no raw Werkzeug hash is stored')

  // an Argon2 hash within the bounds is kept, logs in, and becomes native at the first login
  const hashOf = async (name: string) => (await app.db.selectFrom('users').select('password_hash').where('username', '=', name).executeTakeFirstOrThrow()).password_hash
  t.equal(await hashOf('argon_ok'), argonWithin)
  t.equal((await login(app, 'argon_ok', 'argon pw')).statusCode, 200)
  t.match(await hashOf('argon_ok'), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  // a wrapped user logs in with the old password, then holds a native hash; once no
  // imported hash is left, other logins stop paying for a Werkzeug derivation
  isError(t, await login(app, 'keeper', 'wrong'), 401, 'INVALID_CREDENTIALS')
  t.equal((await login(app, 'keeper', 'keeper pw')).statusCode, 200)
  t.match(await hashOf('keeper'), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  t.same(await werkzeugMethodsInUse(app.db), ['pbkdf2:sha256:1000'])
  t.equal((await login(app, 'friend', 'friend pw')).statusCode, 200)
  t.same(await werkzeugMethodsInUse(app.db), [])
})

t.test('raw Werkzeug hashes an earlier version of the import stored are wrapped by the next run; they log in before and after', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  await user(app, 'zed')
  const raw = werkzeugPbkdf2('legacy pw', 'salt', 1000)
  await app.db.insertInto('users').values({ username: 'legacy', username_key: 'legacy', password_hash: raw, created_at: Date.now() }).execute()
  const hashOf = async (name: string) => (await app.db.selectFrom('users').select('password_hash').where('username', '=', name).executeTakeFirstOrThrow()).password_hash
  const zedHash = await hashOf('zed')
  const file = join(tempDir(t), 'chat_server.db')
  writeOriginal(file, {})

  const dry = await adminJson(env, 'import', file, '--dry-run')
  t.equal(dry.legacy_hashes_wrapped, 1)
  t.equal(await hashOf('legacy'), raw, 'a dry run wraps nothing')
  const real = await admin(env, 'import', file)
  t.match(real.out, /password hashes\s+1 stored raw by an earlier import, wrapped in Argon2id/)
  t.notOk(real.out.includes(raw))
  t.match(await hashOf('legacy'), /^\$cc-wrapped\$pbkdf2:sha256:1000\$salt\$argon2id\$/)
  t.equal(await hashOf('zed'), zedHash, 'native hashes are left alone')
  t.equal((await adminJson(env, 'import', file)).legacy_hashes_wrapped, 0, 'once')
  t.equal((await login(app, 'legacy', 'legacy pw')).statusCode, 200)
  t.match(await hashOf('legacy'), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
})
