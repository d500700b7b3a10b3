import { PostgresAdapter, type Kysely } from 'kysely'

// Who blocked whom. A block is one-way and never shown to the blocked user: the server
// hides their requests from the blocker and refuses their messages as from a stranger.

export async function up (db: Kysely<any>): Promise<void> {
  const idType = db.getExecutor().adapter instanceof PostgresAdapter ? 'bigint' : 'integer'
  await db.schema.createTable('blocks')
    .addColumn('blocker_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('blocked_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addPrimaryKeyConstraint('blocks_pk', ['blocker_id', 'blocked_id'])
    .execute()
  await db.schema.createIndex('blocks_blocked').on('blocks').column('blocked_id').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('blocks').execute()
}
