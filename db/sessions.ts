import type { Kysely } from 'kysely'
import { precompile } from './perf/precompiled.js'
import type { Database } from './schema.js'
import type { User } from './users.js'

export interface SessionUser extends User {
  token_version: number
  disabled: boolean
  revoked: boolean
  /** The token's device, while it is still this device (not removed, not registered again). */
  device: { key: number, id: number, lastSeenAt: number } | undefined
}

// every authenticated request runs it: built and compiled once
const sessionUser = precompile((db, p: { userId: number, deviceKey: number, jti: string }) => db.selectFrom('users')
  .leftJoin('devices', join => join.on('devices.id', '=', p.deviceKey).onRef('devices.user_id', '=', 'users.id'))
  .select(eb => [
    'users.id', 'users.username', 'users.token_version', 'users.disabled_at',
    'devices.device_id', 'devices.last_seen_at',
    eb.exists(eb.selectFrom('revoked_tokens').select('jti').where('jti', '=', p.jti)).as('revoked')
  ])
  .where('users.id', '=', p.userId))

/** The token's user and device with everything that decides whether the token still works, in one query. */
export async function findSessionUser (db: Kysely<Database>, userId: number, deviceKey: number, jti: string): Promise<SessionUser | undefined> {
  const row = await sessionUser.first(db, { userId, deviceKey, jti })
  if (row === undefined) return undefined
  return {
    id: row.id,
    username: row.username,
    token_version: row.token_version,
    disabled: row.disabled_at !== null,
    revoked: Boolean(row.revoked),
    device: row.device_id === null || row.last_seen_at === null ? undefined : { key: deviceKey, id: row.device_id, lastSeenAt: row.last_seen_at }
  }
}

/** Logout: the token `jti` stops working until it would have expired anyway (one transaction). */
export async function revokeToken (db: Kysely<Database>, jti: string, userId: number, expiresAt: number): Promise<void> {
  await db.transaction().execute(async trx => {
    await trx.insertInto('revoked_tokens').values({ jti, user_id: userId, expires_at: expiresAt })
      .onConflict(oc => oc.column('jti').doNothing())
      .execute()
  })
}

/** Revocations of tokens that have expired anyway are no longer needed. */
export async function purgeExpiredRevocations (db: Kysely<Database>, now = Date.now()): Promise<number> {
  const result = await db.deleteFrom('revoked_tokens').where('expires_at', '<', now).executeTakeFirst()
  return Number(result.numDeletedRows)
}
