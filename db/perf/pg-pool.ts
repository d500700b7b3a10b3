import { PostgresDialect, PostgresDriver, type DialectAdapter, type Driver, type PostgresDialectConfig } from 'kysely'
import pg from 'pg'
import { preparesStatements } from './named-statements.js'

// Kysely's executor wraps each query in promises of its own (a connection provider, the
// driver's acquire and release, the result's wrapping) around what the pool does anyway. A
// precompiled query (perf/precompiled.ts) outside a transaction runs without it: a read on
// the database's read pipeline (below), a write on a pooled client taken as Kysely's driver
// would take it.

const pools = new WeakMap<object, { pool: pg.Pool, reads: ReadPipeline }>()

/**
 * Kysely's PostgresDialect over `pool`, whose adapter (shared by its transactions) names the
 * pool and its read pipeline for poolRows; destroying the database ends both.
 */
export class PooledPostgresDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig & { pool: pg.Pool }
  readonly #reads: ReadPipeline

  constructor (config: PostgresDialectConfig & { pool: pg.Pool }) {
    super(config)
    this.#config = config
    this.#reads = new ReadPipeline(config.pool.options)
  }

  override createAdapter (): DialectAdapter {
    const adapter = super.createAdapter()
    pools.set(adapter, { pool: this.#config.pool, reads: this.#reads })
    return adapter
  }

  override createDriver (): Driver {
    const reads = this.#reads
    return new class extends PostgresDriver {
      override async destroy (): Promise<void> {
        await reads.end()
        await super.destroy()
      }
    }(this.#config)
  }
}

// A plain select (not one that locks rows): it never waits for another connection's locks,
// so it cannot hold up the reads queued behind it on the pipeline.
const PLAIN_SELECT = /^select\s/i
const LOCKING = /\sfor\s+(update|no\s+key\s+update|share|key\s+share)\b/i

/**
 * The rows of a compiled query run outside a transaction on the PostgreSQL database whose
 * adapter is `adapter`: a plain select on its read pipeline, anything else on a pooled
 * client. Undefined inside a transaction (which holds a client of its own) or on another dialect.
 */
export function poolRows (adapter: object, inTransaction: boolean, sql: string, parameters: readonly unknown[]): Promise<unknown[]> | undefined {
  const database = inTransaction ? undefined : pools.get(adapter)
  if (database === undefined) return undefined
  return PLAIN_SELECT.test(sql) && !LOCKING.test(sql)
    ? database.reads.rows(sql, parameters)
    : rowsFrom(database.pool, sql, parameters)
}

async function rowsFrom (pool: pg.Pool, sql: string, parameters: readonly unknown[]): Promise<unknown[]> {
  const client = await pool.connect()
  try {
    // as Kysely's driver sends it: text and values (a named statement, see named-statements.ts)
    return (await client.query(sql, parameters as unknown[])).rows
  } finally {
    client.release()
  }
}

/**
 * The reads made outside a transaction, on one connection of their own in pg's pipeline
 * mode: each is sent at once, without waiting for the answers to those before it, and the
 * reads of one turn of the event loop go out in one write. A pooled client instead takes one
 * round trip a query, and each query's write wakes a PostgreSQL backend that was asleep: on
 * a small read, the kernel's work for that wake-up cost more of the server's CPU than the
 * rest of the request (bench/HISTORY.md). A plain select never waits for a lock, so one slow
 * writer cannot stall the reads queued behind it; writes and transactions keep the pool.
 * A connection that fails is dropped (its reads fail, as on a pooled client) and the next
 * read opens another.
 */
export class ReadPipeline {
  readonly #config: pg.ClientConfig
  #client: Promise<pg.Client> | undefined
  #holding = false
  #ended = false

  constructor (config: pg.ClientConfig) {
    this.#config = config
  }

  async rows (sql: string, parameters: readonly unknown[]): Promise<unknown[]> {
    if (this.#ended) throw new Error('the database was closed')
    const client = await (this.#client ??= this.#open())
    this.#holdWritesForTheTurn(client.connection.stream)
    return (await client.query(sql, parameters as unknown[])).rows
  }

  /** Closes the connection once the reads sent on it are answered; a read after it fails. */
  async end (): Promise<void> {
    this.#ended = true
    const opened = this.#client
    this.#client = undefined
    await opened?.then(async client => { await client.end() }, () => {})
  }

  #open (): Promise<pg.Client> {
    const client = new pg.Client({ ...this.#config, pipeline: true })
    const opened = client.connect().then(() => {
      preparesStatements(client)
      return client
    })
    // a connection that failed or closed: the next read opens another
    const drop = (): void => { if (this.#client === opened) this.#client = undefined }
    client.on('error', drop)
    client.on('end', drop)
    opened.catch(drop)
    return opened
  }

  // the first read of a turn corks the socket and the turn's end sends all of them at once
  #holdWritesForTheTurn (stream: pg.Connection['stream']): void {
    if (this.#holding) return
    this.#holding = true
    stream.cork()
    setImmediate(() => {
      this.#holding = false
      stream.uncork()
    })
  }
}
