import { PostgresAdapter, type Kysely } from 'kysely'

// Per-device messages (PUT /v1/messages/{username}). A send is one row in `sends` (its id,
// and the sender's client_msg_id, so that a retry stores nothing twice) and one envelope per
// destination device, each with its ciphertext. An envelope lives until its device
// acknowledges it (or retention removes it): then it is deleted, and its event with it.
// Everything cascades from the accounts and devices it belongs to.

export async function up (db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter
  const idType = pg ? 'bigint' : 'integer'
  const id = pg ? 'bigint' : 'integer'

  await db.schema.createTable('sends')
    .addColumn('id', id, col => pg ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement())
    .addColumn('sender_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('recipient_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('client_msg_id', 'text')
    .addColumn('created_at', 'bigint', col => col.notNull())
    .execute()
  await db.schema.createIndex('sends_sender_client_msg_id').on('sends').columns(['sender_id', 'client_msg_id']).unique().execute()
  await db.schema.createIndex('sends_recipient').on('sends').column('recipient_id').execute()
  await db.schema.createIndex('sends_created').on('sends').column('created_at').execute()

  await db.schema.createTable('envelopes')
    .addColumn('id', id, col => pg ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement())
    .addColumn('send_id', idType, col => col.notNull().references('sends.id').onDelete('cascade'))
    .addColumn('device_id', idType, col => col.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('source_device', 'integer', col => col.notNull())
    .addColumn('type', 'integer', col => col.notNull())
    .addColumn('content', 'text', col => col.notNull())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addUniqueConstraint('envelopes_device_send', ['device_id', 'send_id'])
    .execute()
  await db.schema.createIndex('envelopes_send').on('envelopes').column('send_id').execute()
  await db.schema.createIndex('envelopes_created').on('envelopes').column('created_at').execute()

  // an envelope's event points at it (as a message event at its message) and goes with it
  await db.schema.alterTable('events').addColumn('envelope_id', idType, col => col.references('envelopes.id').onDelete('cascade')).execute()
  await db.schema.createIndex('events_envelope').on('events').column('envelope_id').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('events_envelope').execute()
  await db.schema.alterTable('events').dropColumn('envelope_id').execute()
  await db.schema.dropTable('envelopes').execute()
  await db.schema.dropTable('sends').execute()
}
