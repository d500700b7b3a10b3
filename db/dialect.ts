import { PostgresAdapter, type Kysely } from 'kysely'

// The one place db/ code asks which database it runs on. The queries are Kysely's and
// the same on both; what differs (locking, statements only one of them has, error codes)
// branches here, so that a third dialect or a change of driver has one seam to widen.
// Migrations keep their own check: they are frozen in time and import no app code.

/** True on PostgreSQL, false on SQLite (a transaction answers as its database does). */
export function isPostgres (db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/** True when a database error is a unique-constraint violation (SQLite or PostgreSQL). */
export function isUniqueViolation (error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505'
}
