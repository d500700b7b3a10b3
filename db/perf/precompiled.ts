import { inspect, isDeepStrictEqual } from 'node:util'
import { CompiledQuery, type Compilable, type Kysely, type RawBuilder } from 'kysely'
import type { Database } from '../schema.js'
import { poolRows } from './pg-pool.js'
import { rowsNow } from './sqlite-driver.js'

// Building a query with Kysely's builder and compiling it to SQL costs more than running
// it on SQLite for the small fixed queries every request makes (the session lookup: ~25 µs
// of builder and compiler against ~10 µs in SQLite). A precompiled query is built and
// compiled once per database (and its transactions) with a marker in place of each named
// argument; a call only puts the arguments in the markers' places. The SQL is Kysely's
// own, so it is the same on both databases as the builder's.
// A call then skips Kysely's executor where it can: on SQLite it runs the cached statement at
// once when the connection is free (perf/sqlite-driver.ts), on PostgreSQL outside a transaction
// it takes a pooled client itself (perf/pg-pool.ts).

const PATH = Symbol('precompiled argument')

/** Stands for the argument at its path in the call's arguments object. */
interface Marker {
  readonly [PATH]: readonly string[]
}

/**
 * The marker for the argument at `path`. Reading a property of it gives that property's
 * marker (`p.first.seq`); anything else a builder could try on it (arithmetic, a string,
 * a branch) would build a different query, which the shape check under test catches.
 */
function markerAt (path: readonly string[]): Marker {
  const children = new Map<string, Marker>()
  return new Proxy({ [PATH]: path }, {
    get (target, key) {
      if (typeof key !== 'string') return key === PATH ? target[PATH] : undefined
      let child = children.get(key)
      if (child === undefined) children.set(key, child = markerAt([...path, key]))
      return child
    }
  })
}

function argumentAt (args: unknown, path: readonly string[]): unknown {
  let value = args
  for (let i = 0; i < path.length; i++) value = (value as Record<string, unknown>)[path[i] as string]
  return value
}

type Build<P, R> = (db: Kysely<Database>, params: P) => Compilable<R>

export interface Precompiled<P, R> {
  rows: (db: Kysely<Database>, params: P) => Promise<R[]>
  first: (db: Kysely<Database>, params: P) => Promise<R | undefined>
}

/** A compiled query, and for each of its parameters the path of the argument it stands for (undefined: a constant). */
interface Template {
  sql: string
  parameters: readonly unknown[]
  paths: Array<readonly string[] | undefined>
  /** Whether each call is checked against the builder's own query (checkPrecompiledShapes). */
  check: boolean
}

// the databases (by their adapter, which their transactions share) whose every
// precompiled call is checked against the builder's own query
const checked = new WeakSet<object>()

/**
 * Called before `db`'s first query: from then on each precompiled call on it also builds
 * its query with the real arguments and throws if that differs from the precompiled one,
 * SQL or parameters (under NODE_ENV=test the db plugin turns it on through connect).
 */
export function checkPrecompiledShapes (db: Kysely<Database>): void {
  checked.add(db.getExecutor().adapter)
}

/**
 * `build` must use each argument only as a plain value (a parameter of the query): an
 * argument that changes the query's shape (a list, a literal, a branch) cannot be a marker.
 */
export function precompile<P extends object, R> (build: Build<P, R>): Precompiled<P, R> {
  const compiled = new WeakMap<object, Template>()
  const compile = (db: Kysely<Database>, adapter: object): Template => {
    const { sql, parameters } = build(db, markerAt([]) as P).compile()
    const paths = parameters.map(p => typeof p === 'object' && p !== null && PATH in p ? (p as Marker)[PATH] : undefined)
    const template = { sql, parameters, paths, check: checked.has(adapter) }
    compiled.set(adapter, template)
    return template
  }
  const rows = async (db: Kysely<Database>, params: P): Promise<R[]> => {
    // a transaction shares its database's adapter: one compilation serves both
    const adapter = db.getExecutor().adapter
    const { sql, parameters, paths, check } = compiled.get(adapter) ?? compile(db, adapter)
    const values = new Array<unknown>(paths.length)
    for (let i = 0; i < paths.length; i++) {
      const path = paths[i]
      values[i] = path === undefined ? parameters[i] : argumentAt(params, path)
    }
    if (check) assertSameShape(sql, values, build(db, params).compile())
    // on SQLite, at once when the connection is free (or the caller's transaction holds it)
    const now = rowsNow(adapter, db.isTransaction, sql, values)
    if (now !== undefined) return now as R[]
    // on PostgreSQL outside a transaction, on a pooled client without Kysely's executor around it
    const pooled = poolRows(adapter, db.isTransaction, sql, values)
    if (pooled !== undefined) return await pooled as R[]
    const result = await db.executeQuery(CompiledQuery.raw(sql, values) as CompiledQuery<R>)
    return result.rows
  }
  return { rows, first: async (db, params) => (await rows(db, params))[0] }
}

/**
 * `precompile` for a statement written in SQL: `build` returns sql`…` with the arguments in
 * it, each only as a value. The long statements of a send or an ack then skip, on every
 * call, building and compiling the text (and hashing a new string for its prepared name).
 */
export function precompileSql<P extends object, R> (build: (params: P) => RawBuilder<R>): Precompiled<P, R> {
  return precompile((db, params: P) => {
    const raw = build(params)
    return { compile: () => raw.compile(db) }
  })
}

/**
 * A statement over a list of rows (a multi-row insert), precompiled once for each count of
 * rows up to `maxRows`; longer lists go through the builder. `build` receives the rows and
 * must read each row's values property by property (a row is a marker, whose keys cannot be
 * listed).
 */
export function precompileRows<Row extends object, R> (
  build: (db: Kysely<Database>, rows: Row[]) => Compilable<R>, maxRows: number
): (db: Kysely<Database>, rows: Row[]) => Promise<R[]> {
  const byCount = new Map<number, Precompiled<{ rows: Row[] }, R>>()
  return async (db, rows) => {
    if (rows.length > maxRows) return (await db.executeQuery(build(db, rows).compile())).rows
    let statement = byCount.get(rows.length)
    if (statement === undefined) {
      const count = rows.length
      byCount.set(count, statement = precompile((db, p: { rows: Row[] }) => build(db, Array.from({ length: count }, (_, i) => p.rows[i] as Row))))
    }
    return await statement.rows(db, { rows })
  }
}

function assertSameShape (sql: string, parameters: unknown[], built: CompiledQuery): void {
  if (sql === built.sql && isDeepStrictEqual(parameters, built.parameters)) return
  throw new Error('a precompiled query differs from the query its builder makes with these arguments: an argument changed the ' +
    `query's shape, and a marker cannot stand for it.\nprecompiled: ${sql}\n  with ${inspect(parameters)}\n` +
    `built:       ${built.sql}\n  with ${inspect(built.parameters)}`)
}
