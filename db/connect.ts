import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely } from 'kysely'
import pg from 'pg'
import type { Database } from './schema.js'
import { startCheckpointer, type Checkpointer } from './checkpointer.js'
import { holdGroupCommits } from './perf/group-commit.js'
import { preparesStatements } from './perf/named-statements.js'
import { PooledPostgresDialect } from './perf/pg-pool.js'
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
  const db = new Kysely<Database>({ dialect: new PooledPostgresDialect({ pool }) })
  pools.set(db, pool)
  return db
}

const pools = new WeakMap<Kysely<Database>, pg.Pool>()

/** The connection pool of a PostgreSQL database (for its metrics); undefined on SQLite. */
export function poolOf (db: Kysely<Database>): pg.Pool | undefined {
  return pools.get(db)
}

// The checkpointer of each SQLite file connection, for truncateLog.
const checkpointers = new WeakMap<Kysely<Database>, Checkpointer>()

/** Resolves once the checkpoint worker of this SQLite file runs (true); false for PostgreSQL, :memory: or a worker that stopped first. */
export async function checkpointerStarted (db: Kysely<Database>): Promise<boolean> {
  return await checkpointers.get(db)?.started ?? false
}

/** Calls `observe` with each hold of the writes while the WAL starts over (seconds; see checkpointer.ts); nothing on PostgreSQL or :memory:. */
export function observeWalHolds (db: Kysely<Database>, observe: (seconds: number) => void): void {
  checkpointers.get(db)?.observeHolds(observe)
}

/**
 * After an erasure: empties the SQLite WAL (checkpointed into the file, where secure_delete
 * has zeroed what was deleted, then truncated), waiting up to `waitMs` for a reader that
 * still uses it; see Checkpointer.truncate. True at once for PostgreSQL and :memory:.
 */
export async function truncateLog (db: Kysely<Database>, waitMs?: number): Promise<boolean> {
  return await checkpointers.get(db)?.truncate(waitMs) ?? true
}

/**
 * The data folder 0700 and the database files 0600, whatever the umask: they hold password
 * hashes. A missing folder is created so; an existing one is left as it is (it may be a
 * mount point or a parent the operator shares on purpose). The database file is created
 * here before SQLite opens it, because SQLite creates the -wal and -shm files with the
 * main file's mode; files that exist already (from an older version) are narrowed to 0600.
 */
function prepareFiles (file: string): void {
  const dir = dirname(file)
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    chmodSync(dir, 0o700)
  }
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600))
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    if (!existsSync(path) || (statSync(path).mode & 0o777) === 0o600) continue
    try {
      chmodSync(path, 0o600)
    } catch (error) {
      // not ours to change (another owner, a read-only mount): as before, rather than refuse to start
      if ((error as NodeJS.ErrnoException).code !== 'EPERM' && (error as NodeJS.ErrnoException).code !== 'EROFS') throw error
    }
  }
}

/** A connection to `file` with the server's settings. */
function openSqlite (file: string): SQLite.Database {
  const sqlite = new SQLite(file)
  // Deleted rows are overwritten with zeros, in their pages and in pages that fall free:
  // an erased account's hash, key and messages do not linger in the file's free space.
  sqlite.pragma('secure_delete = ON')
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
  return sqlite
}

/**
 * Empties sqlite_stat4, which an operator's ANALYZE (or PRAGMA optimize) fills on this
 * build of SQLite (SQLITE_ENABLE_STAT4); true when it held rows. Its samples are copies of
 * index keys (usernames among them) that outlive the rows they came from, and with them
 * every statement whose argument is compared to an indexed column is planned again each
 * time that argument changes: under the realistic load 5% of the server's CPU went to
 * parsing the same statements again. sqlite_stat1, which costs neither, is kept.
 */
function droppedStat4Samples (sqlite: SQLite.Database): boolean {
  const table = sqlite.prepare("select 1 from sqlite_schema where type = 'table' and name = 'sqlite_stat4'").get()
  if (table === undefined) return false
  try {
    return sqlite.prepare('delete from sqlite_stat4').run().changes > 0
  } catch {
    return false // a read-only file: it is read as it is
  }
}

function connectSqlite (settings: Extract<DatabaseSettings, { kind: 'sqlite' }>): Kysely<Database> {
  if (settings.file !== ':memory:') prepareFiles(settings.file)
  let sqlite = openSqlite(settings.file)
  // SQLite reads the samples when it loads the schema: a fresh connection does without them
  if (droppedStat4Samples(sqlite)) {
    sqlite.close()
    sqlite = openSqlite(settings.file)
  }
  // the writes to hold while the log starts over are this connection's (db, below), and so is
  // the read transaction to end before the log is truncated on this connection (dialect, below)
  const checkpointer = settings.file === ':memory:'
    ? undefined
    : startCheckpointer(sqlite, settings.file, { holdWrites: async () => await holdGroupCommits(db), endReads: () => { dialect.endReads() } })
  const dialect = new CachingSqliteDialect(sqlite, async () => { await checkpointer?.stop() })
  const db = new Kysely<Database>({ dialect })
  if (checkpointer !== undefined) checkpointers.set(db, checkpointer)
  return db
}
