import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CompiledQuery, Migrator, sql, type Kysely } from 'kysely'
import t, { type Test } from 'tap'
import { connect } from '../../db/connect.js'
import type { Database } from '../../db/schema.js'
import { migrationProvider } from '../../migrations/index.js'
import { freshDatabaseEnv, postgresUrl } from '../helper.js'

// Migration 0009: events_message and events_envelope hold only the events that point at a
// message or an envelope. An existing database keeps its events; the lookups by
// message_id and envelope_id still go through the indexes; an envelope's events still go
// with it; and the migration goes down again.

const BEFORE = '2026-11-30-0008-envelopes'
const AFTER = '2026-11-30-0009-partial-event-indexes'

async function database (t: Test): Promise<{ db: Kysely<Database>, migrator: Migrator }> {
  const env = await freshDatabaseEnv(t)
  let db: Kysely<Database>
  if (postgresUrl === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'cc-partial-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    db = connect({ kind: 'sqlite', file: join(dir, 'db.sqlite') })
  } else {
    db = connect({ kind: 'postgres', url: postgresUrl, schema: env.DATABASE_SCHEMA })
  }
  t.teardown(async () => { await db.destroy() })
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema: postgresUrl === undefined ? undefined : env.DATABASE_SCHEMA })
  return { db, migrator }
}

/** The definition of each of the two indexes, as the database reports it. */
async function definitions (db: Kysely<Database>): Promise<Record<string, string>> {
  const { rows } = postgresUrl === undefined
    ? await sql<{ name: string, definition: string }>`select name, sql as definition from sqlite_master where type = 'index' and name in ('events_message', 'events_envelope')`.execute(db)
    : await sql<{ name: string, definition: string }>`select indexname as name, indexdef as definition from pg_indexes where schemaname = current_schema() and indexname in ('events_message', 'events_envelope')`.execute(db)
  return Object.fromEntries(rows.map(row => [row.name, row.definition.toLowerCase()]))
}

/** The plan of `query` (its parameter written `$1`), as one line of text. */
async function plan (db: Kysely<Database>, query: string, value: number): Promise<string> {
  if (postgresUrl === undefined) {
    const { rows } = await db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${query.replace('$1', '?')}`, [value]))
    return rows.map(row => row.detail).join('; ')
  }
  return await db.connection().execute(async connection => {
    // the test's tables are tiny: without this the planner rightly prefers to read them whole
    await sql`set enable_seqscan = off`.execute(connection)
    const { rows } = await connection.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain ${query}`, [value]))
    await sql`reset enable_seqscan`.execute(connection)
    return rows.map(row => row['QUERY PLAN']).join('; ')
  })
}

t.test('an existing database migrates: its events stay, and the indexes leave out the events that point at nothing', async t => {
  const { db, migrator } = await database(t)
  t.equal((await migrator.migrateTo(BEFORE)).error, undefined)
  await sql`insert into users (id, username, username_key, password_hash, created_at) values (1, 'alice', 'alice', 'x', 1), (2, 'bob', 'bob', 'x', 1)`.execute(db)
  await sql`insert into messages (id, sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, created_at) values (5, 1, 2, 1, 2, 's', 'r', 1)`.execute(db)
  await sql`insert into sends (id, sender_id, recipient_id, created_at) values (3, 1, 2, 1)`.execute(db)
  await sql`insert into envelopes (id, send_id, device_id, source_device, type, content, created_at) values (4, 3, 2, 1, 1, 'c', 1)`.execute(db)
  await sql`insert into events (device_id, seq, type, payload, message_id, envelope_id, created_at) values
    (1, 1, 'message', '{}', 5, null, 1), (2, 1, 'message', '{}', 5, null, 1), (2, 2, 'envelope', '{}', null, 4, 1), (1, 2, 'contact_removed', '{}', null, null, 1)`.execute(db)
  const before = await definitions(db)
  t.notMatch(before.events_message, /where/, 'before: every event in both indexes')

  t.equal((await migrator.migrateTo(AFTER)).error, undefined)
  const after = await definitions(db)
  t.match(after.events_message, /where.*message_id.*is not null/)
  t.match(after.events_envelope, /where.*envelope_id.*is not null/)
  t.equal((await db.selectFrom('events').select('seq').execute()).length, 4, 'every event is still there')

  // the lookups the indexes serve still use them
  t.match(await plan(db, 'select seq from events where message_id = $1', 5), /events_message/)
  t.match(await plan(db, 'delete from events where message_id in (select id from messages where user_lo = $1)', 1), /events_message/)
  t.match(await plan(db, 'select seq from events where envelope_id = $1', 4), /events_envelope/)

  // an envelope's event still goes with it (the foreign key's cascade finds it by envelope_id)
  await db.deleteFrom('envelopes').where('id', '=', 4).execute()
  const left = await db.selectFrom('events').select(['device_id', 'seq']).orderBy('device_id').orderBy('seq').execute()
  t.same(left.map(e => [Number(e.device_id), Number(e.seq)]), [[1, 1], [1, 2], [2, 1]])

  t.equal((await migrator.migrateTo(BEFORE)).error, undefined, 'and down again')
  t.notMatch((await definitions(db)).events_message, /where/)
  t.notMatch((await definitions(db)).events_envelope, /where/)
})
