import type { Kysely } from 'kysely'
import { UserNotFound } from '../errors.js'
import { truncateLog } from './connect.js'
import { eraseInTransaction } from './erasure.js'
import { isUniqueViolation } from './dialect.js'
import { precompile } from './perf/precompiled.js'
import type { Database } from './schema.js'

export interface User {
  id: number
  username: string
}

export interface UserWithHash extends User {
  password_hash: string
  token_version: number
  disabled_at: number | null
}

// The rule for user names, written once: the API's schema, the import of the original
// database and every lookup follow it. A name is kept as it was typed and compared
// case-insensitively, through its key (the unique username_key column).
export const usernameRule = { minLength: 3, maxLength: 32, pattern: '^[A-Za-z0-9_.-]+$' } as const
const usernamePattern = new RegExp(usernameRule.pattern)

export function isValidUsername (username: string): boolean {
  return username.length >= usernameRule.minLength && username.length <= usernameRule.maxLength && usernamePattern.test(username)
}

/** The form in which names are compared: 'Alice' and 'alice' are one user. */
export function usernameKey (username: string): string {
  return username.toLowerCase()
}

/** Inserts a user; returns undefined when the name (case-insensitively) is taken. */
export async function createUser (db: Kysely<Database>, username: string, passwordHash: string, now = Date.now()): Promise<User | undefined> {
  try {
    return await db.insertInto('users')
      .values({ username, username_key: usernameKey(username), password_hash: passwordHash, created_at: now })
      .returning(['id', 'username'])
      .executeTakeFirstOrThrow()
  } catch (error) {
    if (isUniqueViolation(error)) return undefined
    throw error
  }
}

export async function findUserByName (db: Kysely<Database>, username: string): Promise<User | undefined> {
  return await userByKey.first(db, { key: usernameKey(username) })
}

/** The user of that name; a 404 naming it as the client wrote it when there is none. */
export async function requireUser (db: Kysely<Database>, username: string): Promise<User> {
  const user = await findUserByName(db, username)
  if (user === undefined) throw new UserNotFound(username)
  return user
}

const userByKey = precompile((db, p: { key: string }) => db.selectFrom('users').select(['id', 'username']).where('username_key', '=', p.key))

export async function findUserWithHash (db: Kysely<Database>, username: string): Promise<UserWithHash | undefined> {
  return await db.selectFrom('users').select(['id', 'username', 'password_hash', 'token_version', 'disabled_at'])
    .where('username_key', '=', usernameKey(username))
    .executeTakeFirst()
}

export async function findUserWithHashById (db: Kysely<Database>, id: number): Promise<UserWithHash | undefined> {
  return await db.selectFrom('users').select(['id', 'username', 'password_hash', 'token_version', 'disabled_at'])
    .where('id', '=', id)
    .executeTakeFirst()
}

/**
 * Replaces the password hash and moves token_version on, in one update, so that every
 * token issued before stops working. `expectedHash` is the hash the old password was
 * checked against: if another change won meanwhile, nothing is written and this returns
 * undefined. Otherwise it returns the new token_version, for a fresh token.
 */
export async function changePassword (db: Kysely<Database>, userId: number, expectedHash: string, newHash: string): Promise<number | undefined> {
  return await db.transaction().execute(async trx => {
    const row = await trx.updateTable('users')
      .set(eb => ({ password_hash: newHash, token_version: eb('token_version', '+', 1) }))
      .where('id', '=', userId)
      .where('password_hash', '=', expectedHash)
      .returning('token_version')
      .executeTakeFirst()
    return row?.token_version
  })
}

/**
 * Erases a user in one transaction (see eraseInTransaction: their rows, the events of others
 * that name them, their name in the audit log), then empties the SQLite WAL of the old
 * page images. The partners to wake (they got a `contact_deleted` event); undefined when
 * there is no such user.
 */
export async function eraseUser (db: Kysely<Database>, userId: number): Promise<number[] | undefined> {
  const erased = await db.transaction().execute(async trx => await eraseInTransaction(trx, userId))
  if (erased !== undefined) await truncateLog(db)
  return erased?.notify
}

/**
 * Replaces a password hash by a stronger one of the same password (an imported Werkzeug hash
 * by Argon2id at login). Only if the hash is still the one that was verified, so that a
 * password change made meanwhile wins; tokens stay valid (the password did not change).
 */
export async function upgradePasswordHash (db: Kysely<Database>, userId: number, verifiedHash: string, newHash: string): Promise<boolean> {
  const result = await db.updateTable('users').set({ password_hash: newHash })
    .where('id', '=', userId).where('password_hash', '=', verifiedHash)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
