import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Migrator, sql } from 'kysely'
import t from 'tap'
import { connect } from '../../db/connect.js'
import { migrationProvider } from '../../migrations/index.js'
import { bearer, build, freshDatabaseEnv, postgresUrl } from '../helper.js'

// The devices migration moves each user's stream to its device 1, whose key is the user's
// id: the tokens and cursors that clients held before it keep working after it.

t.test('streams, cursors and tokens from before devices belong to device 1 afterwards', async t => {
  const env = await freshDatabaseEnv(t)
  let settings: Parameters<typeof connect>[0]
  if (postgresUrl === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'cc-devices-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    env.DATABASE_URL = `sqlite:${join(dir, 'db.sqlite')}`
    settings = { kind: 'sqlite', file: join(dir, 'db.sqlite') }
  } else {
    settings = { kind: 'postgres', url: postgresUrl, schema: env.DATABASE_SCHEMA }
  }
  const old = connect(settings)
  const schema = postgresUrl === undefined ? undefined : env.DATABASE_SCHEMA
  const migrated = await new Migrator({ db: old, provider: migrationProvider, migrationTableSchema: schema }).migrateTo('2026-11-27-0005-admin')
  t.equal(migrated.error, undefined)
  // two users, ids 7 and 9, as an older server left them: alice's stream 1..3, of which 1 was purged
  await sql`insert into users (id, username, username_key, password_hash, created_at, event_seq, event_floor) values
    (7, 'alice', 'alice', 'x', 1000, 3, 1), (9, 'bob', 'bob', 'x', 1000, 0, 0)`.execute(old)
  await sql`insert into events (user_id, seq, type, payload, message_id, created_at) values
    (7, 2, 'chat_request', '{"requester_username":"bob"}', null, 2000), (7, 3, 'contact_removed', '{"username":"bob"}', null, 3000)`.execute(old)
  await old.destroy()

  const app = await build(t, env)
  const devices = await app.db.selectFrom('devices').select(['id', 'user_id', 'device_id', 'event_seq', 'event_floor']).orderBy('id').execute()
  t.same(devices.map(d => [d.id, d.user_id, d.device_id, Number(d.event_seq), Number(d.event_floor)]), [[7, 7, 1, 3, 1], [9, 9, 1, 0, 0]], 'device 1 takes the user\'s id and counters')
  const events = await app.db.selectFrom('events').select(['device_id', 'seq']).orderBy('seq').execute()
  t.same(events.map(e => [e.device_id, Number(e.seq)]), [[7, 2], [7, 3]])

  // a token of that time has no device: it is device 1's, and so is its cursor
  const legacy = app.jwt.sign({ user_id: 7, username: 'alice', jti: randomUUID(), ver: 0 })
  const res = await app.inject({ method: 'GET', url: '/sync?since=7-2', headers: bearer(legacy) })
  t.equal(res.statusCode, 200)
  t.same(res.json().events.map((e: { type: string, cursor: string }) => [e.type, e.cursor]), [['contact_removed', '7-3']])

  // a user added now gets a device 1 too, with a key no earlier device had
  await app.db.insertInto('users').values({ username: 'carol', username_key: 'carol', password_hash: 'x', created_at: 5000 }).execute()
  const carol = await app.db.selectFrom('devices').innerJoin('users', 'users.id', 'devices.user_id').select(['devices.id', 'devices.device_id'])
    .where('users.username', '=', 'carol').executeTakeFirstOrThrow()
  t.equal(carol.device_id, 1)
  t.ok(carol.id > 9, 'a new key')
})
