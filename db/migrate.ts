import { Migrator, type Kysely, type MigrationResult } from 'kysely'
import { migrationProvider } from '../migrations/index.js'

/** Applies every pending migration; throws if one fails (the failed one is rolled back). */
export async function migrateToLatest (db: Kysely<any>): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider: migrationProvider })
  const { error, results = [] } = await migrator.migrateToLatest()
  if (error !== undefined) {
    const failed = results.find(result => result.status === 'Error')
    throw new Error(`migration ${failed?.migrationName ?? '?'} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  return results
}
