import { CompiledQuery, type Compilable, type Kysely } from 'kysely'
import type { Database } from './schema.js'

// Building a query with Kysely's builder and compiling it to SQL costs more than running
// it on SQLite for the small fixed queries every request makes (the session lookup: ~25 µs
// of builder and compiler against ~10 µs in SQLite). A precompiled query is built and
// compiled once per database (and its transactions) with a marker in place of each argument;
// a call only puts the arguments in the markers' places. The SQL is Kysely's own, so it
// is the same on both databases as the builder's.

class Marker {
  constructor (readonly index: number) {}
}

type Build<A extends unknown[], R> = (db: Kysely<Database>, ...args: A) => Compilable<R>

export interface Precompiled<A extends unknown[], R> {
  rows: (db: Kysely<Database>, ...args: A) => Promise<R[]>
  first: (db: Kysely<Database>, ...args: A) => Promise<R | undefined>
}

/**
 * `build` must take each argument only as a plain value (a parameter of the query): an
 * argument that changes the query's shape (a list, a literal, a branch) cannot be a marker.
 */
export function precompile<A extends unknown[], R> (arity: A['length'], build: Build<A, R>): Precompiled<A, R> {
  const compiled = new WeakMap<object, CompiledQuery<R>>()
  const compile = (db: Kysely<Database>): CompiledQuery<R> => {
    // a transaction shares its database's adapter: one compilation serves both
    const key = db.getExecutor().adapter
    let query = compiled.get(key)
    if (query === undefined) {
      const markers = Array.from({ length: arity }, (_, i) => new Marker(i)) as unknown as A
      query = build(db, ...markers).compile()
      compiled.set(key, query)
    }
    return query
  }
  const rows = async (db: Kysely<Database>, ...args: A): Promise<R[]> => {
    const query = compile(db)
    const parameters = query.parameters.map(p => p instanceof Marker ? args[p.index] : p)
    const result = await db.executeQuery(CompiledQuery.raw(query.sql, parameters) as CompiledQuery<R>)
    return result.rows
  }
  return { rows, first: async (db, ...args) => (await rows(db, ...args))[0] }
}

/**
 * One precompiled query per literal LIMIT (see limits.ts: a bound LIMIT is planned again on
 * every call), compiled the first time that limit is used.
 */
export function precompileByLimit<A extends unknown[], R> (arity: A['length'], build: (limit: number) => Build<A, R>): (limit: number) => Precompiled<A, R> {
  const pages = new Map<number, Precompiled<A, R>>()
  return limit => {
    let page = pages.get(limit)
    if (page === undefined) pages.set(limit, page = precompile(arity, build(limit)))
    return page
  }
}
