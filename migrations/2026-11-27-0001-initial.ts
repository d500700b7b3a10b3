import { PostgresAdapter, sql, type ColumnDefinitionBuilder, type Kysely } from 'kysely'

// The schema of the original API, made portable: every id is an identity column that is
// never reused (a reused message id would hide a message from a client polling since_id),
// every time is epoch milliseconds in a bigint, and every query path has an index.

export async function up (db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter
  const idType = pg ? 'bigint' : 'integer'
  const id = (col: ColumnDefinitionBuilder): ColumnDefinitionBuilder =>
    pg ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement()

  await db.schema.createTable('users')
    .addColumn('id', idType, id)
    .addColumn('username', 'text', col => col.notNull())
    // lower(username): names are unique case-insensitively, so look-alikes cannot coexist
    .addColumn('username_key', 'text', col => col.notNull().unique())
    .addColumn('password_hash', 'text', col => col.notNull())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .execute()

  await db.schema.createTable('public_keys')
    .addColumn('user_id', idType, col => col.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('public_key', 'text', col => col.notNull())
    .addColumn('updated_at', 'bigint', col => col.notNull())
    .execute()

  // One row per pair of users (user_lo < user_hi), whoever asked first.
  await db.schema.createTable('chat_requests')
    .addColumn('id', idType, id)
    .addColumn('requester_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('requested_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('user_lo', idType, col => col.notNull())
    .addColumn('user_hi', idType, col => col.notNull())
    .addColumn('status', 'text', col => col.notNull().check(sql`status in ('pending', 'accepted')`))
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addColumn('updated_at', 'bigint', col => col.notNull())
    .addUniqueConstraint('chat_requests_pair', ['user_lo', 'user_hi'])
    .addCheckConstraint('chat_requests_ordered', sql`user_lo < user_hi`)
    .execute()
  await db.schema.createIndex('chat_requests_requested').on('chat_requests').columns(['requested_id', 'status']).execute()
  await db.schema.createIndex('chat_requests_requester').on('chat_requests').columns(['requester_id', 'status']).execute()
  await db.schema.createIndex('chat_requests_hi').on('chat_requests').column('user_hi').execute()

  // Each message is stored twice encrypted: once for its sender, once for its recipient.
  // (user_lo, user_hi, id) serves "a conversation after since_id" as one ordered range scan.
  // No foreign keys here: account deletion removes a user's messages explicitly, by index.
  await db.schema.createTable('messages')
    .addColumn('id', idType, id)
    .addColumn('sender_id', idType, col => col.notNull())
    .addColumn('recipient_id', idType, col => col.notNull())
    .addColumn('user_lo', idType, col => col.notNull())
    .addColumn('user_hi', idType, col => col.notNull())
    .addColumn('sender_blob', 'text', col => col.notNull())
    .addColumn('recipient_blob', 'text', col => col.notNull())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .execute()
  await db.schema.createIndex('messages_conversation').on('messages').columns(['user_lo', 'user_hi', 'id']).execute()
  await db.schema.createIndex('messages_user_hi').on('messages').columns(['user_hi', 'id']).execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  for (const table of ['messages', 'chat_requests', 'public_keys', 'users']) {
    await db.schema.dropTable(table).execute()
  }
}
