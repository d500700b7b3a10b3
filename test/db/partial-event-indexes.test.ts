import { sql, type Kysely } from 'kysely'
import t from 'tap'
import type { Database } from '../../db/schema.js'
import { postgresUrl } from '../helper.js'
import { migratableDatabase, plan } from './migration-helper.js'

// Migration 0009: events_message and events_envelope hold only the events that point at a
// message or an envelope. An existing database keeps its events; the lookups by
// message_id and envelope_id still go through the indexes; an envelope's events still go
// with it; and the migration goes down again.

const BEFORE = '2026-11-30-0008-envelopes'
const AFTER = '2026-11-30-0009-partial-event-indexes'

/** The definition of each of the two indexes, as the database reports it. */
async function definitions (db: Kysely<Database>): Promise<Record<string, string>> {
  const { rows } = postgresUrl === undefined
    ? await sql<{ name: string, definition: string }>`select name, sql as definition from sqlite_master where type = 'index' and name in ('events_message', 'events_envelope')`.execute(db)
    : await sql<{ name: string, definition: string }>`select indexname as name, indexdef as definition from pg_indexes where schemaname = current_schema() and indexname in ('events_message', 'events_envelope')`.execute(db)
  return Object.fromEntries(rows.map(row => [row.name, row.definition.toLowerCase()]))
}

t.test('an existing database migrates: its events stay, and the indexes leave out the events that point at nothing', async t => {
  const { db, migrator } = await migratableDatabase(t)
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
  t.match(await plan(db, 'select seq from events where message_id = $1', [5]), /events_message/)
  t.match(await plan(db, 'delete from events where message_id in (select id from messages where user_lo = $1)', [1]), /events_message/)
  t.match(await plan(db, 'select seq from events where envelope_id = $1', [4]), /events_envelope/)

  // an envelope's event still goes with it (the foreign key's cascade finds it by envelope_id)
  await db.deleteFrom('envelopes').where('id', '=', 4).execute()
  const left = await db.selectFrom('events').select(['device_id', 'seq']).orderBy('device_id').orderBy('seq').execute()
  t.same(left.map(e => [Number(e.device_id), Number(e.seq)]), [[1, 1], [1, 2], [2, 1]])

  t.equal((await migrator.migrateTo(BEFORE)).error, undefined, 'and down again')
  t.notMatch((await definitions(db)).events_message, /where/)
  t.notMatch((await definitions(db)).events_envelope, /where/)
})
