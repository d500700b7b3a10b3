import type { Kysely } from 'kysely'
import { listContactIds } from './contacts.js'
import { appendEvents } from './events.js'
import { precompile } from './perf/precompiled.js'
import type { Database } from './schema.js'
import { usernameKey, type User } from './users.js'

export interface KeyOutcome {
  /** True when a different key replaced an earlier one. */
  changed: boolean
  /** Contacts that were sent a `key_changed` event. */
  notify: number[]
}

/**
 * Inserts or replaces the user's public key. Replacing it with a different one sends each
 * accepted contact a `key_changed` event (a safety number changed); a first key or the
 * same key again sends nothing.
 */
export async function putPublicKey (db: Kysely<Database>, user: User, publicKey: string, now = Date.now()): Promise<KeyOutcome> {
  return await db.transaction().execute(async trx => {
    const replace = async (): Promise<boolean> => (await trx.updateTable('public_keys')
      .set({ public_key: publicKey, updated_at: now })
      .where('user_id', '=', user.id)
      .where('public_key', '<>', publicKey)
      .executeTakeFirst()).numUpdatedRows > 0n
    // The conditional update takes the row lock, so of two racing uploads each sees the
    // other's key. When there was no row, insert; if a racing first upload inserted one
    // meanwhile, replace that (the next statement sees it).
    let changed = await replace()
    if (!changed) {
      const inserted = await trx.insertInto('public_keys')
        .values({ user_id: user.id, public_key: publicKey, updated_at: now })
        .onConflict(oc => oc.column('user_id').doNothing())
        .returning('user_id')
        .executeTakeFirst()
      if (inserted !== undefined) return { changed: false, notify: [] }
      changed = await replace()
    }
    if (!changed) return { changed: false, notify: [] }
    const contacts = await listContactIds(trx, user.id)
    await appendEvents(trx, contacts.map(id => ({ userId: id, type: 'key_changed' as const, payload: { username: user.username } })), now)
    return { changed: true, notify: contacts }
  })
}

/**
 * The user named `username` (any case) with their public key (null until they upload one),
 * in one query; undefined for no such user.
 */
export async function findUserKey (db: Kysely<Database>, username: string): Promise<{ id: number, username: string, public_key: string | null } | undefined> {
  return await userKey.first(db, { key: usernameKey(username) })
}

// every get_key runs it: built and compiled once
const userKey = precompile((db, p: { key: string }) => db.selectFrom('users')
  .leftJoin('public_keys', 'public_keys.user_id', 'users.id')
  .select(['users.id', 'users.username', 'public_keys.public_key'])
  .where('users.username_key', '=', p.key))
