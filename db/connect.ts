import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { Database } from './schema.js'
import { startCheckpointer } from './checkpointer.js'
import { CachingSqliteDialect } from './sqlite-driver.js'

export type DatabaseSettings =
  | { kind: 'sqlite', file: string }
  | { kind: 'postgres', url: string, schema?: string | undefined }

export interface Connection {
  db: Kysely<Database>
  kind: DatabaseSettings['kind']
}

const INT8_OID = 20

// Kysely sends every query unnamed, so PostgreSQL parses and plans it anew each time. A
// query with parameters is sent as a named prepared statement instead, one name per SQL
// text (the same few texts come back all the time), which each connection parses once.
// Texts beyond the first MAX_NAMED (queries built with literals) go unnamed as before.
const MAX_NAMED = 500
const statementNames = new Map<string, string>()

function statementName (text: string): string | undefined {
  let name = statementNames.get(text)
  if (name === undefined && statementNames.size < MAX_NAMED) statementNames.set(text, name = `cc${statementNames.size}`)
  return name
}

function preparesStatements (client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  client.query = ((text: unknown, values?: unknown, ...rest: unknown[]) => {
    const name = typeof text === 'string' && Array.isArray(values) && values.length > 0 && rest.length === 0 ? statementName(text) : undefined
    return name === undefined ? query(text, values, ...rest) : query({ name, text, values })
  }) as typeof client.query
}

export function connect (settings: DatabaseSettings): Connection {
  if (settings.kind === 'postgres') {
    const pool = new pg.Pool({
      connectionString: settings.url,
      max: 10,
      ...(settings.schema === undefined ? {} : { options: `-c search_path=${settings.schema}` }),
      // bigint ids, times and counts come back as numbers, as on SQLite (all stay below 2^53)
      types: { getTypeParser: (oid: number, format?: any) => oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format) }
    })
    pool.on('connect', preparesStatements)
    return { kind: 'postgres', db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }) }
  }
  if (settings.file !== ':memory:') mkdirSync(dirname(settings.file), { recursive: true })
  const sqlite = new SQLite(settings.file)
  sqlite.pragma('journal_mode = WAL')
  // NORMAL in WAL mode: a committed write survives a crash of the process (not of the OS)
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')
  // Temporary files, savepoint journals included, stay in memory: group commit (see
  // group-commit.ts) gives each message a savepoint, whose journal on disk cost a pwrite per
  // page it saved, on the event loop.
  sqlite.pragma('temp_store = MEMORY')
  // Reads map the file instead of copying each page through a read() call: a conversation's
  // messages lie scattered over a large table, so a page of history touches many pages.
  sqlite.pragma('mmap_size = 1073741824')
  const checkpointer = settings.file === ':memory:' ? undefined : startCheckpointer(sqlite, settings.file)
  const dialect = new CachingSqliteDialect(sqlite, async () => { await checkpointer?.stop() })
  return { kind: 'sqlite', db: new Kysely<Database>({ dialect }) }
}
