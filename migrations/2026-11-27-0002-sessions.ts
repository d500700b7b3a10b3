import type { Kysely } from 'kysely'

// What makes a token stop working before it expires: the user's token_version moving on
// (password change), the user being disabled by an operator, or its jti being revoked
// (logout). All in the database, so every instance sees it at once.

export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users')
    .addColumn('token_version', 'integer', col => col.notNull().defaultTo(0))
    .execute()
  await db.schema.alterTable('users')
    .addColumn('disabled_at', 'bigint')
    .execute()
  await db.schema.createTable('revoked_tokens')
    .addColumn('jti', 'text', col => col.primaryKey())
    .addColumn('user_id', 'bigint', col => col.notNull())
    .addColumn('expires_at', 'bigint', col => col.notNull())
    .execute()
  await db.schema.createIndex('revoked_tokens_expires').on('revoked_tokens').column('expires_at').execute()
  await db.schema.createIndex('revoked_tokens_user').on('revoked_tokens').column('user_id').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('revoked_tokens').execute()
  await db.schema.alterTable('users').dropColumn('disabled_at').execute()
  await db.schema.alterTable('users').dropColumn('token_version').execute()
}
