import { randomBytes } from 'node:crypto'
import { KEMKeyPair } from '@signalapp/libsignal-client'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import t, { type Test } from 'tap'
import { admin, adminEnv, tempDir } from '../fixtures/admin.js'
import { werkzeugPbkdf2, writeOriginal } from '../fixtures/original.js'
import { deviceLogin, newIdentity, signedEcKey } from '../fixtures/prekeys.js'
import { ADMIN_TOKEN, PASSWORD, bearer, befriend, build, call, login, postgresUrl, snapshot, tableNames, user } from '../helper.js'

// An erased account leaves nothing behind: no table holds the user's name, password hash,
// public keys or message blobs (partners' events and the audit log included), and on SQLite
// neither does the database file nor its WAL, whose bytes are read here. Each value is
// distinctive (random) so that finding it anywhere means it was left behind.

interface Secrets {
  username: string
  hash: string
  keys: string[]
  blobs: string[]
}

const unique = (label: string): string => `${label}${randomBytes(8).toString('hex')}`

/**
 * The victim with a key (changed once), contacts, requests both ways, messages both ways (a
 * long blob that spills to overflow pages among them), acknowledgements both ways, a removed
 * contact and an operator's disable and enable, so that every table and partners' event
 * streams name them.
 */
async function populate (t: Test, app: FastifyInstance, env: Record<string, string>): Promise<{ secrets: Secrets, token: string }> {
  const username = unique('vic_')
  const victim = { name: username, token: await user(app, username) }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await user(app, 'carol')
  const dave = { name: 'dave', token: await user(app, 'dave') }
  const erin = { name: 'erin', token: await user(app, 'erin') }
  await befriend(app, victim, bob)
  await befriend(app, erin, victim)
  const keys = [unique('key-one-'), unique('key-two-')]
  for (const key of keys) t.equal((await call(app, victim.token, { method: 'POST', url: '/upload_key', payload: { public_key: key } })).statusCode, 200)
  // Signal keys: an identity key, a signed prekey, one-time keys of both kinds (fresh ones:
  // their text is the needle) and a last-resort key, one of each claimed by bob
  victim.token = await deviceLogin(app, username, { id: 1, registrationId: 4321 })
  const identity = newIdentity()
  const signed = signedEcKey(identity, 1)
  const oneTime = [freshKyber(identity, 2), freshKyber(identity, 3)]
  const lastResort = freshKyber(identity, 4)
  t.equal((await call(app, victim.token, { method: 'PUT', url: '/v1/keys/identity', payload: { identityKey: identity.key } })).statusCode, 200)
  t.equal((await call(app, victim.token, { method: 'PUT', url: '/v1/keys', payload: { signedPreKey: signed, pqPreKeys: oneTime, pqLastResortPreKey: lastResort } })).statusCode, 200)
  t.equal((await call(app, bob.token, { method: 'GET', url: `/v1/keys/${username}/1` })).statusCode, 200)
  keys.push(identity.key, signed.signature, oneTime[1]!.publicKey.slice(100, 160), lastResort.publicKey.slice(100, 160), lastResort.signature)
  const blobs: string[] = []
  const send = async (from: typeof bob, to: typeof bob, long = false): Promise<number> => {
    const senderBlob = unique('sb-') + (long ? 'x'.repeat(9000) + unique('tail-') : '')
    const recipientBlob = unique('rb-')
    blobs.push(senderBlob, recipientBlob)
    const res = await call(app, from.token, { method: 'POST', url: '/send_message', payload: { recipient_username: to.name, sender_blob: senderBlob, recipient_blob: recipientBlob } })
    t.equal(res.statusCode, 201)
    return res.json().id
  }
  const toBob = await send(victim, bob, true)
  const toVictim = await send(bob, victim)
  await send(victim, bob)
  t.equal((await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: toBob } })).statusCode, 200)
  t.equal((await call(app, victim.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: toVictim } })).statusCode, 200)
  // envelopes both ways (PUT /v1/messages), one of them acknowledged
  const device = async (name: string, registrationId: number): Promise<string> =>
    (await app.inject({ method: 'POST', url: '/login', payload: { username: name, password: PASSWORD, device: { registrationId } } })).json().token
  const [victimLaptop, bobLaptop] = [await device(username, 11), await device('bob', 22)]
  // to each registered device of the recipient: `devices` are [deviceId, registrationId]
  const envelope = async (token: string, to: string, devices: Array<[number, number]>, acked = false): Promise<number> => {
    const messages = devices.map(([id, registrationId]) => ({ type: 1, destinationDeviceId: id, destinationRegistrationId: registrationId, content: Buffer.from(unique('env-')).toString('base64') }))
    // an acknowledged one is gone before the erasure already (test/messages/send-envelopes.test.ts)
    if (!acked) blobs.push(...messages.map(m => m.content))
    const res = await call(app, token, { method: 'PUT', url: `/v1/messages/${to}`, payload: { messages } })
    t.equal(res.statusCode, 200, res.body)
    return res.json().id
  }
  const envelopeToBob = await envelope(victim.token, 'bob', [[2, 22]], true)
  await envelope(bob.token, username, [[1, 4321], [2, 11]])
  t.equal((await call(app, bobLaptop, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: [envelopeToBob] } })).json().acknowledged, 1)
  t.ok(victimLaptop)
  t.equal((await call(app, victim.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'carol' } })).statusCode, 201)
  t.equal((await call(app, dave.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: username } })).statusCode, 201)
  t.equal((await call(app, victim.token, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'dave' } })).statusCode, 200)
  t.equal((await call(app, victim.token, { method: 'POST', url: '/remove_contact', payload: { username: 'erin' } })).statusCode, 200)
  t.equal((await admin(env, 'disable-user', username)).code, 0)
  t.equal((await admin(env, 'enable-user', username)).code, 0)
  const row = await app.db.selectFrom('users').select('password_hash').where('username', '=', username).executeTakeFirstOrThrow()
  return { secrets: { username, hash: row.password_hash, keys, blobs }, token: victim.token }
}

/** A Kyber key of its own (the fixture's are shared), signed by the identity. */
function freshKyber (identity: ReturnType<typeof newIdentity>, keyId: number): { keyId: number, publicKey: string, signature: string } {
  const serialized = KEMKeyPair.generate().getPublicKey().serialize()
  return { keyId, publicKey: Buffer.from(serialized).toString('base64'), signature: Buffer.from(identity.pair.privateKey.sign(serialized)).toString('base64') }
}

/** Each secret in the forms it could be found in: whole, and the hash's last field (the digest itself). */
function needles (secrets: Secrets): Array<[string, string]> {
  return [
    ['username', secrets.username],
    ['password hash', secrets.hash],
    ['password digest', secrets.hash.split('$').at(-1)!],
    ...secrets.keys.map((key, i): [string, string] => [`public key ${i + 1}`, key]),
    ...secrets.blobs.map((blob, i): [string, string] => [`blob ${i + 1}`, blob.slice(0, 40)])
  ]
}

/** Every row of every table as text. */
async function everyRow (app: FastifyInstance): Promise<string> {
  const texts: string[] = []
  for (const table of await tableNames(app.db)) {
    const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(app.db)
    for (const row of rows) texts.push(`${table}: ${JSON.stringify(row, (_key, value) => typeof value === 'bigint' ? Number(value) : value)}`)
  }
  return texts.join('\n')
}

const ways: Array<[string, (app: FastifyInstance, env: Record<string, string>, victim: { username: string, token: string }) => Promise<void>]> = [
  ['delete_account', async (app, _env, victim) => {
    const res = await call(app, victim.token, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })
    if (res.statusCode !== 200) throw new Error(`delete_account: ${res.statusCode} ${res.body}`)
  }],
  ['the CLI\'s delete-user', async (_app, env, victim) => {
    const res = await admin(env, 'delete-user', victim.username, '--yes')
    if (res.code !== 0) throw new Error(`delete-user: ${res.code} ${res.err}`)
  }],
  ['the console\'s DELETE /admin/api/users/:username', async (app, _env, victim) => {
    const res = await app.inject({ method: 'DELETE', url: `/admin/api/users/${victim.username}`, headers: bearer(ADMIN_TOKEN) })
    if (res.statusCode !== 200) throw new Error(`DELETE: ${res.statusCode} ${res.body}`)
  }]
]

for (const [way, erase] of ways) {
  t.test(`after ${way}, no table holds the user's name, hash, keys or blobs`, async t => {
    const env = { ...await adminEnv(t), ADMIN_TOKEN }
    const app = await build(t, env)
    const { secrets, token } = await populate(t, app, env)
    const before = await everyRow(app)
    // the first key was replaced by the second: only on disk (in the old page images) before
    for (const [what, needle] of needles(secrets)) if (what !== 'public key 1') t.ok(before.includes(needle), `the ${what} is in the tables before`)
    await erase(app, env, { username: secrets.username, token })
    const after = await everyRow(app)
    for (const [what, needle] of needles(secrets)) t.notOk(after.includes(needle), `no table holds the ${what}`)
  })

  t.test(`after ${way}, neither the SQLite file nor its WAL holds the user's name, hash, keys or blobs`, { skip: postgresUrl === undefined ? false : 'PostgreSQL: see docs/security.md for what it keeps on disk' }, async t => {
    const env: Record<string, string> = { ...await adminEnv(t), ADMIN_TOKEN }
    const file = env.DATABASE_URL!.slice('sqlite:'.length)
    const app = await build(t, env)
    const { secrets, token } = await populate(t, app, env)
    const bytes = (): Buffer => Buffer.concat(['', '-wal', '-shm'].map(suffix => existsSync(file + suffix) ? readFileSync(file + suffix) : Buffer.alloc(0)))
    for (const [what, needle] of needles(secrets)) t.ok(bytes().includes(needle), `the ${what} is on disk before`)
    await erase(app, env, { username: secrets.username, token })
    const disk = bytes()
    for (const [what, needle] of needles(secrets)) t.notOk(disk.includes(needle), `the ${what} is not on disk`)
    t.equal(existsSync(file + '-wal') ? readFileSync(file + '-wal').length : 0, 0, 'the WAL was truncated')
  })
}

t.test('the audit log names an erased user by an opaque id, a new one per deletion, in the rows written before too', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  for (const name of ['alice', 'bob', 'carol']) await user(app, name)
  for (const argv of [['disable-user', 'alice'], ['enable-user', 'alice'], ['disable-user', 'bob'], ['disable-user', 'carol'], ['delete-user', 'alice', '--yes'], ['delete-user', 'carol', '--yes']]) {
    t.equal((await admin(env, ...argv)).code, 0, argv.join(' '))
  }
  const rows = await app.db.selectFrom('admin_audit').select(['action', 'target']).orderBy('id').execute()
  t.same(rows.map(row => row.action), ['disable-user', 'enable-user', 'disable-user', 'disable-user', 'delete-user', 'delete-user'])
  const [aliceDisabled, aliceEnabled, bobDisabled, carolDisabled, aliceDeleted, carolDeleted] = rows.map(row => row.target)
  t.match(aliceDeleted, /^erased:[A-Za-z0-9_-]{12}$/)
  t.equal(aliceDisabled, aliceDeleted, 'alice\'s earlier rows carry the same id')
  t.equal(aliceEnabled, aliceDeleted)
  t.equal(carolDisabled, carolDeleted)
  t.not(carolDeleted, aliceDeleted, 'each erased user has an id of their own')
  t.equal(bobDisabled, 'bob', 'the rows of users still here are untouched')
})

t.test('the operator\'s delete and its audit row are one transaction: an audit row refused leaves the user whole', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r' } })
  // the database itself refuses the audit row (a trigger), after the erasure's statements ran
  if (postgresUrl === undefined) {
    await sql`create trigger refuse_audit before insert on admin_audit when new.action = 'delete-user' begin select raise(abort, 'audit refused'); end`.execute(app.db)
  } else {
    await sql`create function refuse_audit() returns trigger language plpgsql as $$ begin raise exception 'audit refused'; end $$`.execute(app.db)
    await sql`create trigger refuse_audit before insert on admin_audit for each row when (new.action = 'delete-user') execute function refuse_audit()`.execute(app.db)
  }
  const before = await snapshot(app)
  const res = await admin(env, 'delete-user', 'alice', '--yes')
  t.equal(res.code, 1)
  t.match(res.err, /audit refused/)
  t.same(await snapshot(app), before, 'nothing was erased')
  t.equal((await call(app, alice.token, { method: 'GET', url: '/get_contacts' })).statusCode, 200)
})

t.test('an imported user\'s import_map rows go with them, but for a tombstone linked to no account, so that a new import does not bring them back', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  const file = join(tempDir(t), 'chat_server.db')
  const original = {
    users: [[1, 'alice', werkzeugPbkdf2(PASSWORD, 'sa')], [2, 'bob', werkzeugPbkdf2(PASSWORD, 'sb')], [3, 'carol', werkzeugPbkdf2(PASSWORD, 'sc')]] as Array<[number, string, string]>,
    requests: [[1, 1, 2, 'accepted'], [2, 2, 3, 'accepted']] as Array<[number, number, number, string]>,
    messages: [[1, 1, 2, 'a1', 'a2', '2024-01-01 10:00:00'], [2, 2, 1, 'b1', 'b2', '2024-01-01 10:01:00'], [3, 2, 3, 'c1', 'c2', '2024-01-01 10:02:00']] as Array<[number, number, number, string, string, string]>
  }
  writeOriginal(file, original)
  t.equal((await admin(env, 'import', file)).code, 0)
  const map = async (): Promise<Array<{ kind: string, original_id: number, new_id: number }>> =>
    (await app.db.selectFrom('import_map').select(['kind', 'original_id', 'new_id']).orderBy('kind').orderBy('original_id').execute())
      .map(row => ({ kind: row.kind, original_id: Number(row.original_id), new_id: Number(row.new_id) }))
  const imported = await map()
  t.equal(imported.length, 6)
  const aliceId = imported.find(row => row.kind === 'user' && row.original_id === 1)!.new_id
  const bobCarolMessage = imported.find(row => row.kind === 'message' && row.original_id === 3)!.new_id

  const token = await login(app, 'alice')
  t.equal((await call(app, token, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })).statusCode, 200)
  const after = await map()
  t.same(after.filter(row => row.kind === 'message'), [{ kind: 'message', original_id: 3, new_id: bobCarolMessage }], 'alice\'s messages\' rows went')
  t.same(after.filter(row => row.kind === 'user'), [
    { kind: 'user', original_id: 1, new_id: 0 },
    ...imported.filter(row => row.kind === 'user' && row.original_id !== 1)
  ], 'alice\'s row links to no account')
  t.notOk(after.some(row => row.new_id === aliceId), 'nothing points at her id')

  const again = await admin(env, 'import', file)
  t.equal(again.code, 0)
  t.equal((await app.db.selectFrom('users').select('id').where('username', '=', 'alice').execute()).length, 0, 'a second import does not bring her back')
  t.equal((await app.db.selectFrom('messages').select('id').execute()).length, 1, 'nor her messages')
})
