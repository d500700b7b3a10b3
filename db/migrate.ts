import { Migrator, type Kysely, type MigrationResult } from 'kysely'
import { migrationProvider } from '../migrations/index.js'

/**
 * Applies every pending migration; throws if one fails (the failed one is rolled back).
 * `schema` (PostgreSQL) pins Kysely's own tables to it: unpinned, Kysely looks for them in
 * every schema of the database and can mistake another schema's for ours.
 */
export async function migrateToLatest (db: Kysely<any>, schema?: string): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider: migrationProvider, ...(schema === undefined ? {} : { migrationTableSchema: schema }) })
  const { error, results = [] } = await migrator.migrateToLatest()
  if (error !== undefined) {
    const failed = results.find(result => result.status === 'Error')
    throw new Error(`migration ${failed?.migrationName ?? '?'} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  return results
}
