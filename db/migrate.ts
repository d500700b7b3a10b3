import { Migrator, sql, type Kysely, type MigrationResult } from 'kysely'
import pg from 'pg'
import { migrationProvider } from '../migrations/index.js'
import { isPostgres } from './dialect.js'

/**
 * The PostgreSQL advisory lock held while migrating. Kysely's migrator reads the catalog of
 * every schema (its introspection), and a schema dropped meanwhile makes that read fail with
 * "schema ... does not exist"; whoever drops schemas of this database (the tests, the
 * benchmark) takes the same lock first. It also keeps instances that start together from
 * migrating at the same time.
 */
const MIGRATION_ADVISORY_LOCK = 20261127

/** Applies every pending migration; throws if one fails (the failed one is rolled back). */
export async function migrateToLatest (db: Kysely<any>): Promise<MigrationResult[]> {
  if (!isPostgres(db)) return await migrate(db)
  return await db.connection().execute(async connection => {
    await sql`select pg_advisory_lock(${MIGRATION_ADVISORY_LOCK})`.execute(connection)
    try {
      return await migrate(connection)
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_ADVISORY_LOCK})`.execute(connection)
    }
  })
}

async function migrate (db: Kysely<any>): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema: await currentSchema(db) })
  const { error, results = [] } = await migrator.migrateToLatest()
  if (error !== undefined) {
    const failed = results.find(result => result.status === 'Error')
    throw new Error(`migration ${failed?.migrationName ?? '?'} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  return results
}

// Without a schema, Kysely's migrator looks for its tables in every schema of the database:
// a kysely_migration table in another schema (another instance, a test running beside us)
// makes it skip creating its own, and fail. So on PostgreSQL name the schema we run in.
async function currentSchema (db: Kysely<any>): Promise<string | undefined> {
  if (!isPostgres(db)) return undefined
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db)
  return rows[0]?.schema
}

/** Creates a PostgreSQL schema (for a throwaway database: a test file, a benchmark run). */
export async function createSchema (url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`create schema ${schema}`)
  } finally {
    await client.end()
  }
}

/** Drops a PostgreSQL schema, never while a migration reads the catalog (see MIGRATION_ADVISORY_LOCK). */
export async function dropSchema (url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_ADVISORY_LOCK])
    await client.query(`drop schema ${schema} cascade`)
  } finally {
    await client.end() // ends the session, and with it the lock
  }
}
