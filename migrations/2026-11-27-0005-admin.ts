import { PostgresAdapter, type Kysely } from 'kysely'

// What operators did, and what an import of the original server brought over.
// admin_audit: one row per admin action (CLI or web console): what, to whom, when, by which tool.
// import_map: original row id -> our row id, so that running the import again adds only what is new.

export async function up (db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter
  await db.schema.createTable('admin_audit')
    .addColumn('id', pg ? 'bigint' : 'integer', col => pg ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addColumn('actor', 'text', col => col.notNull())
    .addColumn('action', 'text', col => col.notNull())
    .addColumn('target', 'text')
    .addColumn('detail', 'text')
    .execute()
  await db.schema.createIndex('admin_audit_created').on('admin_audit').column('created_at').execute()

  await db.schema.createTable('import_map')
    .addColumn('kind', 'text', col => col.notNull())
    .addColumn('original_id', 'bigint', col => col.notNull())
    .addColumn('new_id', 'bigint', col => col.notNull())
    .addPrimaryKeyConstraint('import_map_pk', ['kind', 'original_id'])
    .execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('import_map').execute()
  await db.schema.dropTable('admin_audit').execute()
}
