import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CompiledQuery, Migrator, sql, type Kysely } from 'kysely'
import type { Test } from 'tap'
import { connect } from '../../db/connect.js'
import type { Database } from '../../db/schema.js'
import { migrationProvider } from '../../migrations/index.js'
import { freshDatabaseEnv, postgresUrl } from '../helper.js'

// For the tests of one migration: an empty database (a fresh SQLite file, or a fresh
// PostgreSQL schema when DATABASE_URL says so) with a migrator to move it to any migration.

export async function migratableDatabase (t: Test): Promise<{ db: Kysely<Database>, migrator: Migrator }> {
  const env = await freshDatabaseEnv(t)
  let db: Kysely<Database>
  if (postgresUrl === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'cc-migration-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    db = connect({ kind: 'sqlite', file: join(dir, 'db.sqlite') })
  } else {
    db = connect({ kind: 'postgres', url: postgresUrl, schema: env.DATABASE_SCHEMA })
  }
  t.teardown(async () => { await db.destroy() })
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema: postgresUrl === undefined ? undefined : env.DATABASE_SCHEMA })
  return { db, migrator }
}

/** The plan of `query` (its parameters written `$1`, `$2`…), as one line of text. */
export async function plan (db: Kysely<Database>, query: string, values: number[]): Promise<string> {
  if (postgresUrl === undefined) {
    const { rows } = await db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${query.replace(/\$\d+/g, '?')}`, values))
    return rows.map(row => row.detail).join('; ')
  }
  return await db.connection().execute(async connection => {
    // the test's tables are tiny: without this the planner rightly prefers to read them whole
    await sql`set enable_seqscan = off`.execute(connection)
    const { rows } = await connection.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain ${query}`, values))
    await sql`reset enable_seqscan`.execute(connection)
    return rows.map(row => row['QUERY PLAN']).join('; ')
  })
}
