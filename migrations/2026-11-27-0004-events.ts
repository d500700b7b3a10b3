import { PostgresAdapter, type Kysely } from 'kysely'

// Real-time delivery. Each user has one event stream, numbered by a per-user counter
// (users.event_seq) that is bumped in the same transaction as the event: on PostgreSQL
// a sequence hands out values before commit, so two writers could commit out of order
// and a reader could skip one; the row lock on the counter makes each user's stream
// follow commit order. users.event_floor is the highest seq that retention deleted:
// a cursor below it has missed events.

export async function up (db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter
  const idType = pg ? 'bigint' : 'integer'

  await db.schema.alterTable('users').addColumn('event_seq', 'bigint', col => col.notNull().defaultTo(0)).execute()
  await db.schema.alterTable('users').addColumn('event_floor', 'bigint', col => col.notNull().defaultTo(0)).execute()

  // client_msg_id makes send_message idempotent per sender (NULLs never collide);
  // delivered_at is set by the recipient's ack.
  await db.schema.alterTable('messages').addColumn('client_msg_id', 'text').execute()
  await db.schema.alterTable('messages').addColumn('delivered_at', 'bigint').execute()
  await db.schema.createIndex('messages_sender_client_msg_id').on('messages').columns(['sender_id', 'client_msg_id']).unique().execute()
  await db.schema.createIndex('messages_recipient').on('messages').columns(['recipient_id', 'id']).execute()
  await db.schema.createIndex('messages_created').on('messages').column('created_at').execute()

  // A message event points at its message row: each reader gets its own copy of the
  // blob from there, so blobs are never stored a third time.
  await db.schema.createTable('events')
    .addColumn('user_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('seq', 'bigint', col => col.notNull())
    .addColumn('type', 'text', col => col.notNull())
    .addColumn('payload', 'text', col => col.notNull())
    .addColumn('message_id', idType)
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addPrimaryKeyConstraint('events_pk', ['user_id', 'seq'])
    .execute()
  await db.schema.createIndex('events_created').on('events').column('created_at').execute()
  await db.schema.createIndex('events_message').on('events').column('message_id').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('events').execute()
  for (const index of ['messages_created', 'messages_recipient', 'messages_sender_client_msg_id']) {
    await db.schema.dropIndex(index).execute()
  }
  await db.schema.alterTable('messages').dropColumn('delivered_at').execute()
  await db.schema.alterTable('messages').dropColumn('client_msg_id').execute()
  await db.schema.alterTable('users').dropColumn('event_floor').execute()
  await db.schema.alterTable('users').dropColumn('event_seq').execute()
}
