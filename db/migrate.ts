import { Migrator, PostgresAdapter, sql, type Kysely, type MigrationResult } from 'kysely'
import { migrationProvider } from '../migrations/index.js'

/** Applies every pending migration; throws if one fails (the failed one is rolled back). */
export async function migrateToLatest (db: Kysely<any>): Promise<MigrationResult[]> {
  // Kysely looks for its migration tables in every schema unless told which one: beside another
  // schema's (another instance, another test) it would take theirs for ours.
  const schema = db.getExecutor().adapter instanceof PostgresAdapter
    ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema
    : undefined
  const migrator = new Migrator({ db, provider: migrationProvider, ...(schema === undefined ? {} : { migrationTableSchema: schema }) })
  const { error, results = [] } = await migrator.migrateToLatest()
  if (error !== undefined) {
    const failed = results.find(result => result.status === 'Error')
    throw new Error(`migration ${failed?.migrationName ?? '?'} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  return results
}
