import { sql, type Compilable, type Kysely, type RawBuilder } from 'kysely'
import type { Database } from '../schema.js'
import { precompile, type Precompiled } from './precompiled.js'

// A page of rows read with a LIMIT. A bound LIMIT makes SQLite plan the statement again
// on every call (an empty poll: 14 µs against 8 µs with a literal here); a literal one
// does not, but each value is a statement of its own. So the limit is rounded up to one
// of a few literals, each compiled once, and the extra rows are dropped.
const LITERAL_LIMITS = [2, 11, 21, 51, 101, 201, 501, 1001]

function literalLimit (wanted: number): number {
  return LITERAL_LIMITS.find(limit => limit >= wanted) ?? wanted
}

export interface Page<R> {
  rows: R[]
  /** True when more rows follow the page. */
  hasMore: boolean
}

/**
 * A precompiled query read a page at a time: `build` puts `limit` (a literal) in the
 * query's LIMIT; a call reads at most `limit` rows, and tells whether there are more.
 */
export function precompilePage<P extends object, R> (
  build: (db: Kysely<Database>, params: P, limit: RawBuilder<number>) => Compilable<R>
): (db: Kysely<Database>, params: P, limit: number) => Promise<Page<R>> {
  const queries = new Map<number, Precompiled<P, R>>()
  return async (db, params, limit) => {
    // one more row than asked tells whether there are more
    const literal = literalLimit(limit + 1)
    let query = queries.get(literal)
    if (query === undefined) queries.set(literal, query = precompile((db, params: P) => build(db, params, sql.lit(literal))))
    const rows = await query.rows(db, params)
    const hasMore = rows.length > limit
    if (hasMore) rows.length = limit
    return { rows, hasMore }
  }
}
