import { PostgresDialect, type DialectAdapter, type PostgresDialectConfig } from 'kysely'
import type pg from 'pg'

// Kysely's executor wraps each query in promises of its own (a connection provider, the
// driver's acquire and release, the result's wrapping) around what the pool does anyway. A
// precompiled query (perf/precompiled.ts) outside a transaction takes a pooled client
// itself instead, as Kysely's driver would, and gives back its rows.

const pools = new WeakMap<object, pg.Pool>()

/** Kysely's PostgresDialect over `pool`, whose adapter (shared by its transactions) names the pool for poolRows. */
export class PooledPostgresDialect extends PostgresDialect {
  readonly #pool: pg.Pool

  constructor (config: PostgresDialectConfig & { pool: pg.Pool }) {
    super(config)
    this.#pool = config.pool
  }

  override createAdapter (): DialectAdapter {
    const adapter = super.createAdapter()
    pools.set(adapter, this.#pool)
    return adapter
  }
}

/**
 * The rows of a compiled query run on a client of the pool of the database whose adapter is
 * `adapter`; undefined inside a transaction (which holds a client of its own) or on another dialect.
 */
export function poolRows (adapter: object, inTransaction: boolean, sql: string, parameters: readonly unknown[]): Promise<unknown[]> | undefined {
  const pool = inTransaction ? undefined : pools.get(adapter)
  return pool === undefined ? undefined : rowsFrom(pool, sql, parameters)
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
