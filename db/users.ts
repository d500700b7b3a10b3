import type { Kysely } from 'kysely'
import { isUniqueViolation } from './errors.js'
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
  return await db.selectFrom('users').select(['id', 'username'])
    .where('username_key', '=', usernameKey(username))
    .executeTakeFirst()
}

export async function findUserWithHash (db: Kysely<Database>, username: string): Promise<UserWithHash | undefined> {
  return await db.selectFrom('users').select(['id', 'username', 'password_hash', 'token_version', 'disabled_at'])
    .where('username_key', '=', usernameKey(username))
    .executeTakeFirst()
}

export async function findUserById (db: Kysely<Database>, id: number): Promise<User | undefined> {
  return await db.selectFrom('users').select(['id', 'username']).where('id', '=', id).executeTakeFirst()
}

/**
 * Erases a user: their keys, requests and contacts (by cascade), every message they sent
 * or received (both copies: the partner loses that history too), then the user row.
 */
export async function eraseUser (db: Kysely<Database>, userId: number): Promise<boolean> {
  return await db.transaction().execute(async trx => {
    await trx.deleteFrom('messages').where(eb => eb.or([eb('user_lo', '=', userId), eb('user_hi', '=', userId)])).execute()
    await trx.deleteFrom('revoked_tokens').where('user_id', '=', userId).execute()
    const result = await trx.deleteFrom('users').where('id', '=', userId).executeTakeFirst()
    return result.numDeletedRows > 0n
  })
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
