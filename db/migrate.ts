import { Migrator, type Kysely, type MigrationResult } from 'kysely'
import { migrationProvider } from '../migrations/index.js'

/**
 * Applies every pending migration; throws if one fails (the failed one is rolled back).
 * With a PostgreSQL schema, the bookkeeping tables are looked for in that schema: left
 * unnamed, Kysely finds another schema's tables and then misses its own.
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
