import type { Kysely } from 'kysely'

// An event points at a message (message_id) or at an envelope (envelope_id), never at both,
// and many events at neither; yet every event had an entry in both indexes, NULLs
// included. The indexes now hold only the events that point at something: a message's
// four events are four index entries fewer to insert (about a twentieth of the
// instructions SQLite spends on a send, bench/micro-send.ts), and the lookups they serve
// (an envelope's events deleted with it, a message's events by message_id) all name a
// value, which a partial index `where ... is not null` answers as before, on both databases.

export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('events_message').execute()
  await db.schema.createIndex('events_message').on('events').column('message_id').where('message_id', 'is not', null).execute()
  await db.schema.dropIndex('events_envelope').execute()
  await db.schema.createIndex('events_envelope').on('events').column('envelope_id').where('envelope_id', 'is not', null).execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('events_message').execute()
  await db.schema.createIndex('events_message').on('events').column('message_id').execute()
  await db.schema.dropIndex('events_envelope').execute()
  await db.schema.createIndex('events_envelope').on('events').column('envelope_id').execute()
}
