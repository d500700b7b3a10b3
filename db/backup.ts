import { randomBytes } from 'node:crypto'
import { closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, linkSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import SQLite from 'better-sqlite3'
import { Kysely, SqliteDialect } from 'kysely'
import { migrationProvider } from '../migrations/index.js'
import { migrateToLatest } from './migrate.js'

// Backups of a SQLite database, made beside a running server, and their way back.
// A copy is taken with SQLite's online backup API in one step (one read transaction: a
// snapshot, while the server keeps writing to its WAL), into a temporary name created 0600,
// switched out of WAL mode so that the one file holds everything, checked, then renamed.
// A restore never opens the backup itself: it copies it beside the database first, checks
// and migrates the copy, and renames it over the database only while no one holds that.

/** A backup or restore that could not be done; `exit` is the CLI's exit code for it. */
export class BackupError extends Error {
  constructor (message: string, readonly exit: number = 1) { super(message) }
}

/** Exit code of a file that is no restorable backup (sysexits' EX_DATAERR). */
export const NOT_A_BACKUP = 65

export interface BackupSummary {
  file: string
  bytes: number
  integrity: 'ok'
  /** the newest migration the database has */
  migration: string | null
  migrations: number
  /** migrations this version knows that the database lacks (applied by a restore) */
  pending_migrations: string[]
  /** migrations this version does not know: the database comes from a newer one */
  unknown_migrations: string[]
  users: number
  messages: number
  newest_message_at: string | null
}

const HEADER = Buffer.from('SQLite format 3\0', 'latin1')
const REQUIRED_TABLES = ['kysely_migration', 'users', 'messages']
// One backup step copies every page: a step of a few pages would start over each time the
// server writes between two steps, which under a steady load is always.
const ALL_PAGES = 0x7fffffff

function isSqlite (file: string): boolean {
  const fd = openSync(file, 'r')
  try {
    const head = Buffer.alloc(HEADER.length)
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(HEADER)
  } finally {
    closeSync(fd)
  }
}

function sqliteCode (error: unknown): string | undefined {
  return error instanceof SQLite.SqliteError ? error.code : undefined
}

/** A name beside `file` that no one else uses, hidden (dot first). */
function tempName (file: string, what: string): string {
  return join(dirname(file), `.${basename(file)}.${what}-${randomBytes(6).toString('hex')}`)
}

function removeWithJournals (file: string): void {
  for (const path of [file, `${file}-journal`, `${file}-wal`, `${file}-shm`]) rmSync(path, { force: true })
}

function syncFile (path: string): void {
  const fd = openSync(path, 'r')
  try { fsyncSync(fd) } finally { closeSync(fd) }
}

/**
 * Checks an open database: integrity, CryptaChat's tables, its migrations; what it holds.
 * Throws a BackupError (NOT_A_BACKUP) naming the problem; `label` names the file in it.
 */
async function inspect (sqlite: SQLite.Database, label: string, file: string): Promise<BackupSummary> {
  try {
    const integrity = sqlite.pragma('integrity_check(20)', { simple: false }) as Array<{ integrity_check: string }>
    if (integrity.length !== 1 || integrity[0]?.integrity_check !== 'ok') {
      throw new BackupError(`${label} is damaged: SQLite's integrity check says: ${integrity.map(row => row.integrity_check).join('; ')}`, NOT_A_BACKUP)
    }
    const tables = new Set((sqlite.prepare("select name from sqlite_master where type = 'table'").all() as Array<{ name: string }>).map(row => row.name))
    const missing = REQUIRED_TABLES.filter(table => !tables.has(table))
    if (missing.length > 0) {
      throw new BackupError(`${label} is a SQLite database but not a CryptaChat one (no ${missing.join(', ')} table)`, NOT_A_BACKUP)
    }
    const applied = (sqlite.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>).map(row => row.name)
    const known = Object.keys(await migrationProvider.getMigrations()).sort()
    const count = (table: string): number => (sqlite.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n
    const newest = (sqlite.prepare('select max(created_at) as t from messages').get() as { t: unknown }).t
    return {
      file,
      bytes: statSync(file).size,
      integrity: 'ok',
      migration: applied.at(-1) ?? null,
      migrations: applied.length,
      pending_migrations: known.filter(name => !applied.includes(name)),
      unknown_migrations: applied.filter(name => !known.includes(name)),
      users: count('users'),
      messages: count('messages'),
      newest_message_at: typeof newest === 'number' ? new Date(newest).toISOString() : null
    }
  } catch (error) {
    const code = sqliteCode(error)
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || code?.startsWith('SQLITE_IOERR') === true) {
      throw new BackupError(`${label} is damaged: ${(error as Error).message}`, NOT_A_BACKUP)
    }
    throw error
  }
}

/** Opens a copy of ours read-write, out of WAL mode (one self-contained file), and inspects it. */
async function openCopy (copy: string, label: string): Promise<{ sqlite: SQLite.Database, summary: BackupSummary }> {
  let sqlite: SQLite.Database | undefined
  try {
    sqlite = new SQLite(copy, { fileMustExist: true })
    sqlite.pragma('journal_mode = DELETE')
    return { sqlite, summary: await inspect(sqlite, label, copy) }
  } catch (error) {
    sqlite?.close()
    const code = sqliteCode(error)
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || code?.startsWith('SQLITE_IOERR') === true) {
      throw new BackupError(`${label} is damaged: ${(error as Error).message}`, NOT_A_BACKUP)
    }
    throw error
  }
}

/** Puts `temp` at `target`: replacing it (`replace`), or only if nothing is there yet. */
function publish (temp: string, target: string, replace: boolean): void {
  if (replace) {
    renameSync(temp, target)
  } else {
    try {
      linkSync(temp, target) // fails if the target appeared meanwhile, where rename would replace it
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupError(`${target} exists; run again with --force to replace it`)
      throw error
    }
    rmSync(temp)
  }
  syncFile(dirname(target))
}

function sameFile (a: string, b: string): boolean {
  return resolve(a) === resolve(b)
}

/** Copies the SQLite database `source` (a server may be using it) to `target`, mode 0600. */
export async function backupSqlite (source: string, target: string, options: { force: boolean }): Promise<BackupSummary> {
  const dir = dirname(resolve(target))
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new BackupError(`the directory ${dir} does not exist`)
  if (existsSync(target)) {
    if (statSync(target).isDirectory()) throw new BackupError(`${target} is a directory; name the backup file`)
    if (!options.force) throw new BackupError(`${target} exists; run again with --force to replace it`)
  }
  if (['', '-wal', '-shm', '-journal'].some(suffix => sameFile(target, source + suffix))) {
    throw new BackupError(`${target} is the database itself (or one of its files); choose another name`)
  }
  if (!existsSync(source)) throw new BackupError(`no database at ${source} (DATA_DIR or DATABASE_URL)`)

  const temp = tempName(target, 'partial')
  closeSync(openSync(temp, 'wx', 0o600)) // SQLite keeps the mode of a file that exists, and gives its journal the same
  let sqlite: SQLite.Database | undefined
  let copy: SQLite.Database | undefined
  try {
    sqlite = new SQLite(source, { fileMustExist: true })
    sqlite.pragma('busy_timeout = 5000')
    await sqlite.backup(temp, { progress: () => ALL_PAGES })
    sqlite.close()
    const opened = await openCopy(temp, 'the copy')
    copy = opened.sqlite
    copy.close()
    syncFile(temp)
    publish(temp, target, options.force)
    return { ...opened.summary, file: target }
  } finally {
    sqlite?.close()
    copy?.close()
    removeWithJournals(temp)
  }
}

/** Checks that `file` is a CryptaChat backup this version can restore; changes nothing. */
export async function checkBackup (file: string): Promise<BackupSummary> {
  // the copy goes to a folder of our own (0700), removed after: the backup's folder may be read-only
  const dir = mkdtempSync(join(tmpdir(), 'cryptachat-check-'))
  try {
    return await withCopy(file, join(dir, 'check.db'), async (_sqlite, summary) => ({ ...summary, file, bytes: statSync(file).size }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * The checks every restore makes, on a private copy of `file` at a temporary name beside
 * `beside` (the copy is removed unless `use` returns normally and takes it away).
 */
async function withCopy<T> (file: string, beside: string, use: (sqlite: SQLite.Database, summary: BackupSummary, copy: string) => Promise<T>): Promise<T> {
  if (!existsSync(file)) throw new BackupError(`no file at ${file}`)
  if (!statSync(file).isFile()) throw new BackupError(`${file} is not a file`)
  if (!isSqlite(file)) throw new BackupError(`${file} is not a SQLite database`, NOT_A_BACKUP)
  if (existsSync(`${file}-wal`) && statSync(`${file}-wal`).size > 0) {
    throw new BackupError(`${file}-wal lies beside ${file}: it is not a self-contained backup (a copy of a database in use?); make backups with the backup command`, NOT_A_BACKUP)
  }
  const copy = tempName(beside, 'restore')
  let sqlite: SQLite.Database | undefined
  try {
    await pipeline(createReadStream(file), createWriteStream(copy, { flags: 'wx', mode: 0o600 }))
    const opened = await openCopy(copy, file)
    sqlite = opened.sqlite
    const { summary } = opened
    if (summary.unknown_migrations.length > 0) {
      throw new BackupError(`${file} comes from a newer CryptaChat: its migration ${summary.unknown_migrations.join(', ')} is unknown to this version; restore it with that version or a newer one`, NOT_A_BACKUP)
    }
    return await use(sqlite, summary, copy)
  } finally {
    sqlite?.close()
    removeWithJournals(copy)
  }
}

export interface RestoreReport extends BackupSummary {
  /** the database file restored into */
  database: string
  /** whether a database was there before (and is replaced) */
  replaced: boolean
  /** migrations applied to the restored copy, the backup being older than this version */
  migrated: string[]
  /**
   * ids of the backup's accounts that the replaced database did not have: erased since the
   * backup was made, if that was an older copy of the same database (null: nothing replaced, or unreadable)
   */
  users_not_in_replaced: number[] | null
}

function userIds (sqlite: SQLite.Database): number[] {
  return (sqlite.prepare('select id from users order by id').pluck().all() as number[])
}

/**
 * Restores the backup `file` into the SQLite database `target`, refused while anyone has
 * `target` open (a running server) and, when `target` exists, unless `force`.
 */
export async function restoreSqlite (file: string, target: string, options: { force: boolean }): Promise<RestoreReport> {
  if (sameFile(file, target)) throw new BackupError(`${file} is the database itself`)
  const exists = existsSync(target) && statSync(target).size > 0
  if (exists && !options.force) {
    throw new BackupError(`a database exists at ${target}; a restore replaces everything in it: stop the server, back it up if you may need it, and run again with --force`)
  }
  const dir = dirname(resolve(target))
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })

  return await withCopy(file, target, async (sqlite, summary, copy) => {
    // An older backup is brought up to this version before it takes the database's place.
    sqlite.pragma('foreign_keys = ON')
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) })
    const migrated = (await migrateToLatest(db)).filter(result => result.status === 'Success').map(result => result.migrationName)
    const check = sqlite.pragma('quick_check', { simple: true })
    if (check !== 'ok') throw new BackupError(`the restored copy failed SQLite's check after migrating: ${String(check)}`)
    const restoredUsers = userIds(sqlite)
    sqlite.close()
    syncFile(copy)

    // Held until the copy has the database's name: a server that starts meanwhile waits, then fails to open it.
    const lock = exists ? lockDatabase(target) : undefined
    let absent: number[] | null = null
    try {
      if (lock !== undefined) {
        try {
          const current = new Set(userIds(lock))
          absent = restoredUsers.filter(id => !current.has(id))
        } catch {} // an unreadable database (the reason for a restore, perhaps): nothing to compare
      }
      for (const suffix of ['-wal', '-shm', '-journal']) rmSync(target + suffix, { force: true })
      publish(copy, target, existsSync(target)) // an empty file is replaced without --force
    } finally {
      lock?.close()
    }
    return { ...summary, file, bytes: statSync(target).size, database: target, replaced: exists, users_not_in_replaced: absent, migrated, pending_migrations: [], migration: migrated.at(-1) ?? summary.migration, migrations: summary.migrations + migrated.length }
  })
}

/**
 * An exclusive lock on the database at `file`, or a BackupError if anyone holds it open.
 * Leaving WAL mode needs every other connection closed (in WAL mode each holds a shared
 * lock for as long as it is open), and it empties the -wal into the file; the exclusive
 * transaction then keeps everyone out.
 */
function lockDatabase (file: string): SQLite.Database {
  let sqlite: SQLite.Database | undefined
  try {
    sqlite = new SQLite(file, { fileMustExist: true })
    sqlite.pragma('busy_timeout = 0')
    sqlite.pragma('journal_mode = DELETE')
    sqlite.exec('BEGIN EXCLUSIVE')
    return sqlite
  } catch (error) {
    sqlite?.close()
    if (sqliteCode(error) === 'SQLITE_BUSY') {
      throw new BackupError(`${file} is in use (a running server?): stop every server on it and run again; nothing was changed`)
    }
    throw error
  }
}
