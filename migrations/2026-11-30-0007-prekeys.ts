import { PostgresAdapter, sql, type Kysely } from 'kysely'

// The Signal protocol's keys (issue 13): the account's identity key, and per device its
// one-time prekeys (EC and Kyber), its signed EC prekey and Kyber last-resort key, and the
// one-time key ids already handed out, so that a re-uploaded id is never handed out twice.
// Keys are kept as the canonical standard base64 the server checked. Every row hangs off
// devices.id (the surrogate, never reused) with ON DELETE CASCADE: deleting or
// re-registering a device, or deleting the account, takes its keys along.

export async function up (db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter
  const idType = pg ? 'bigint' : 'integer'
  const kind = sql`kind in ('ec', 'kyber')`

  await db.schema.alterTable('users').addColumn('identity_key', 'text').execute()

  // claimed by a DELETE ... RETURNING of the lowest key_id of a kind: the primary key serves it
  await db.schema.createTable('one_time_prekeys')
    .addColumn('device_key', idType, col => col.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('kind', 'text', col => col.notNull().check(kind))
    .addColumn('key_id', 'integer', col => col.notNull())
    .addColumn('public_key', 'text', col => col.notNull())
    // Kyber one-time keys are signed; EC one-time keys are not
    .addColumn('signature', 'text')
    .addPrimaryKeyConstraint('one_time_prekeys_pk', ['device_key', 'kind', 'key_id'])
    .execute()

  // kind 'ec': the signed prekey; kind 'kyber': the last-resort key (handed out, never deleted)
  await db.schema.createTable('signed_prekeys')
    .addColumn('device_key', idType, col => col.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('kind', 'text', col => col.notNull().check(kind))
    .addColumn('key_id', 'integer', col => col.notNull())
    .addColumn('public_key', 'text', col => col.notNull())
    .addColumn('signature', 'text', col => col.notNull())
    .addPrimaryKeyConstraint('signed_prekeys_pk', ['device_key', 'kind'])
    .execute()

  await db.schema.createTable('claimed_prekeys')
    .addColumn('device_key', idType, col => col.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('kind', 'text', col => col.notNull().check(kind))
    .addColumn('key_id', 'integer', col => col.notNull())
    .addPrimaryKeyConstraint('claimed_prekeys_pk', ['device_key', 'kind', 'key_id'])
    .execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('claimed_prekeys').execute()
  await db.schema.dropTable('signed_prekeys').execute()
  await db.schema.dropTable('one_time_prekeys').execute()
  await db.schema.alterTable('users').dropColumn('identity_key').execute()
}
