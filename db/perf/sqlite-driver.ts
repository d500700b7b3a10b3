import type { Database as SQLiteDatabase, Statement } from 'better-sqlite3'
import {
  CompiledQuery, SelectQueryNode, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler,
  type DatabaseConnection, type DatabaseIntrospector, type Dialect, type DialectAdapter, type Driver,
  type Kysely, type QueryCompiler, type QueryResult
} from 'kysely'

// Kysely's own SQLite driver prepares every statement anew: under load better-sqlite3's
// prepare alone was 8 to 10% of the server's CPU. This one is the same driver (one connection behind a mutex, transactions by
// plain SQL) with the prepared statements cached by their SQL text. Kysely builds the same
// text for the same query shape, so the cache stays as small as the set of queries.

const MAX_STATEMENTS = 1000

// Rows are read as arrays and made into objects here: better-sqlite3 builds each row
// object property by property, which for a page of 100 messages cost about a third more
// than reading arrays and naming their columns in JavaScript.

interface Prepared {
  statement: Statement
  /** The column names of a reader whose rows are read as arrays; undefined for any other statement. */
  columns: string[] | undefined
}

function named (columns: string[], values: unknown[]): Record<string, unknown> {
  const row: Record<string, unknown> = {}
  for (let i = 0; i < columns.length; i++) row[columns[i] as string] = values[i]
  return row
}

// The reads of one turn of the event loop share one read transaction. A statement run
// outside a transaction begins and ends one of its own, and in WAL mode that takes and
// releases a lock on the -shm file: two fcntl calls, 5 to 6 µs on a one-row select that
// costs under 1 µs inside an open transaction (bench/HISTORY.md, 2026-12-01). So the first
// read outside a transaction opens one (`begin`), and it ends (`commit`) once the turn's
// callbacks have run (setImmediate), or before anything that is not a plain read: a write
// (one with RETURNING too), a `begin` of Kysely's, a streamed query, a checkpoint asked for on
// this connection (endReads). Reads then see the database as it was at the turn's first
// read, which every read outside a transaction could already see at any moment; a write is
// committed before it is answered, as before; and the log can still start over, since the
// next write ends the read first.

class CachingConnection implements DatabaseConnection {
  readonly #db: SQLiteDatabase
  readonly #statements = new Map<string, Prepared>()
  readonly #begin: Statement
  readonly #commit: Statement
  readonly #rollback: Statement
  /** A read transaction of this turn's reads is open (see above). */
  #reading = false

  constructor (db: SQLiteDatabase) {
    this.#db = db
    this.#begin = db.prepare('begin')
    this.#commit = db.prepare('commit')
    this.#rollback = db.prepare('rollback')
  }

  /** Ends the read transaction of this turn's reads, if one is open. */
  endReads (): void {
    if (!this.#reading) return
    this.#reading = false
    try {
      this.#commit.run()
    } catch {
      // a read transaction has nothing to keep: if it cannot end by a commit, a rollback ends it
      if (this.#db.inTransaction) this.#rollback.run()
    }
  }

  readonly #endReadsSoon = (): void => { this.endReads() }

  /** Before `statement` runs: a plain read joins (or opens) the turn's read transaction; anything else ends it first. */
  #around (statement: Statement): void {
    if (statement.reader && statement.readonly) {
      if (this.#reading || this.#db.inTransaction) return
      this.#begin.run()
      this.#reading = true
      setImmediate(this.#endReadsSoon)
    } else if (this.#reading) {
      this.endReads()
    }
  }

  #prepare (sql: string): Prepared {
    let prepared = this.#statements.get(sql)
    if (prepared === undefined) {
      // a query built with literals (not parameters) could grow the cache without end
      if (this.#statements.size >= MAX_STATEMENTS) this.#statements.clear()
      const statement = this.#db.prepare(sql)
      // the columns of `select *` follow the table's schema, which may change under a
      // prepared statement: such a reader keeps object rows
      const fixedColumns = statement.reader && !sql.includes('*')
      const columns = fixedColumns ? statement.columns().map(column => column.name) : undefined
      if (fixedColumns) statement.raw(true)
      prepared = { statement, columns }
      this.#statements.set(sql, prepared)
    }
    return prepared
  }

  /** A statement run at once: a reader's rows, or what a writer changed. */
  #run (sql: string, parameters: readonly unknown[]): QueryResult<unknown> {
    const { statement, columns } = this.#prepare(sql)
    this.#around(statement)
    if (columns !== undefined) return { rows: (statement.all(parameters) as unknown[][]).map(values => named(columns, values)) }
    if (statement.reader) return { rows: statement.all(parameters) }
    const { changes, lastInsertRowid } = statement.run(parameters)
    return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] }
  }

  async executeQuery<R> (compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    return this.#run(compiledQuery.sql, compiledQuery.parameters) as QueryResult<R>
  }

  /** The rows of `sql` run at once (none for a writer): what executeQuery gives, without its promise. */
  rowsNow (sql: string, parameters: readonly unknown[]): unknown[] {
    return this.#run(sql, parameters).rows
  }

  async * streamQuery<R> (compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    if (!SelectQueryNode.is(compiledQuery.query)) throw new Error('SQLite streams only select queries')
    const { statement, columns } = this.#prepare(compiledQuery.sql)
    // its statement stays open across turns, which a read transaction ended meanwhile would cut
    // short; and while it streams, it holds the connection: no other read opens one
    this.endReads()
    for (const row of statement.iterate(compiledQuery.parameters as unknown[])) {
      yield { rows: [(columns === undefined ? row : named(columns, row as unknown[])) as R] }
    }
  }
}

class CachingDriver implements Driver {
  readonly #db: SQLiteDatabase
  readonly #connection: CachingConnection
  // SQLite has one connection: a query or a transaction holds it until it is released
  #held: Promise<void> | undefined
  #release: (() => void) | undefined

  readonly #beforeClose: () => Promise<void>

  constructor (db: SQLiteDatabase, beforeClose: () => Promise<void>) {
    this.#db = db
    this.#connection = new CachingConnection(db)
    this.#beforeClose = beforeClose
  }

  async init (): Promise<void> {}

  /**
   * Runs a query at once when nothing holds the connection, or when the caller is the
   * transaction that holds it: what Kysely's executor would do, without its promises
   * (acquiring, releasing, wrapping the result), which cost a small read about as much as
   * SQLite does. Undefined when another holder has the connection: the caller waits its turn.
   */
  rowsNow (sql: string, parameters: readonly unknown[], inTransaction: boolean): unknown[] | undefined {
    if (!inTransaction && this.#held !== undefined) return undefined
    return this.#connection.rowsNow(sql, parameters)
  }

  async acquireConnection (): Promise<DatabaseConnection> {
    while (this.#held !== undefined) await this.#held
    this.#held = new Promise(resolve => { this.#release = resolve })
    return this.#connection
  }

  async releaseConnection (): Promise<void> {
    const release = this.#release
    this.#held = undefined
    this.#release = undefined
    release?.()
  }

  async beginTransaction (connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin'))
  }

  async commitTransaction (connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }

  async rollbackTransaction (connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }

  async savepoint (connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quote(name)}`))
  }

  async rollbackToSavepoint (connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to ${quote(name)}`))
  }

  async releaseSavepoint (connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release ${quote(name)}`))
  }

  /** Ends the read transaction of this turn's reads (see CachingConnection), e.g. before a checkpoint on this connection. */
  endReads (): void {
    this.#connection.endReads()
  }

  async destroy (): Promise<void> {
    await this.#beforeClose()
    this.endReads()
    this.#db.close()
  }
}

function quote (identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`
}

// each database's driver by its adapter, which the database and its transactions share
const drivers = new WeakMap<object, CachingDriver>()

/**
 * Runs a compiled query at once on the database (or transaction) whose adapter is `adapter`
 * and gives its rows; undefined when the connection is another's for now (see
 * CachingDriver#rowsNow), or when the database is not on this dialect.
 */
export function rowsNow (adapter: object, inTransaction: boolean, sql: string, parameters: readonly unknown[]): unknown[] | undefined {
  return drivers.get(adapter)?.rowsNow(sql, parameters, inTransaction)
}

/** Kysely's SqliteDialect over one better-sqlite3 database, with cached prepared statements. */
export class CachingSqliteDialect implements Dialect {
  readonly #driver: CachingDriver

  /** `beforeClose` runs when Kysely is destroyed, before the database is closed. */
  constructor (db: SQLiteDatabase, beforeClose: () => Promise<void> = async () => {}) {
    this.#driver = new CachingDriver(db, beforeClose)
  }

  createDriver (): Driver { return this.#driver }
  /** Ends the read transaction of this turn's reads, if one is open (see CachingConnection). */
  endReads (): void { this.#driver.endReads() }
  createQueryCompiler (): QueryCompiler { return new SqliteQueryCompiler() }
  createAdapter (): DialectAdapter {
    const adapter = new SqliteAdapter()
    drivers.set(adapter, this.#driver)
    return adapter
  }

  createIntrospector (db: Kysely<any>): DatabaseIntrospector { return new SqliteIntrospector(db) }
}
