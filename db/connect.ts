import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { Database } from './schema.js'
import { startCheckpointer } from './checkpointer.js'
import { preparesStatements } from './perf/named-statements.js'
import { checkPrecompiledShapes } from './perf/precompiled.js'
import { CachingSqliteDialect } from './perf/sqlite-driver.js'

export type DatabaseSettings =
  | { kind: 'sqlite', file: string }
  | { kind: 'postgres', url: string, schema?: string | undefined }

export interface ConnectOptions {
  /** Check every precompiled query against its builder's (perf/precompiled.ts): the tests do. */
  checkPrecompiled?: boolean
}

const INT8_OID = 20

/** The database `settings` name, ready for queries (Kysely connects on the first one). */
export function connect (settings: DatabaseSettings, options: ConnectOptions = {}): Kysely<Database> {
  const db = settings.kind === 'postgres' ? connectPostgres(settings) : connectSqlite(settings)
  if (options.checkPrecompiled === true) checkPrecompiledShapes(db)
  return db
}

function connectPostgres (settings: Extract<DatabaseSettings, { kind: 'postgres' }>): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString: settings.url,
    max: 10,
    ...(settings.schema === undefined ? {} : { options: `-c search_path=${settings.schema}` }),
    // bigint ids, times and counts come back as numbers, as on SQLite (all stay below 2^53)
    types: { getTypeParser: (oid: number, format?: any) => oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format) }
  })
  pool.on('connect', preparesStatements)
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
}

function connectSqlite (settings: Extract<DatabaseSettings, { kind: 'sqlite' }>): Kysely<Database> {
  if (settings.file !== ':memory:') mkdirSync(dirname(settings.file), { recursive: true })
  const sqlite = new SQLite(settings.file)
  sqlite.pragma('journal_mode = WAL')
  // NORMAL in WAL mode: a committed write survives a crash of the process (not of the OS)
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')
  // Temporary files, savepoint journals included, stay in memory: group commit (see
  // perf/group-commit.ts) gives each message a savepoint, whose journal on disk cost a pwrite per
  // page it saved, on the event loop.
  sqlite.pragma('temp_store = MEMORY')
  // Reads map the file instead of copying each page through a read() call: a conversation's
  // messages lie scattered over a large table, so a page of history touches many pages.
  sqlite.pragma('mmap_size = 1073741824')
  const checkpointer = settings.file === ':memory:' ? undefined : startCheckpointer(sqlite, settings.file)
  const dialect = new CachingSqliteDialect(sqlite, async () => { await checkpointer?.stop() })
  return new Kysely<Database>({ dialect })
}
