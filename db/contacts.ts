import type { Kysely } from 'kysely'
import { isUniqueViolation } from './errors.js'
import { appendEvents } from './events.js'
import type { Database, RequestStatus } from './schema.js'
import type { User } from './users.js'

// A pair of users has at most one chat_requests row, keyed by (user_lo, user_hi):
// pending (requester asked requested) or accepted (they are contacts).

export interface Relation {
  id: number
  requester_id: number
  requested_id: number
  status: RequestStatus
}

function pair (a: number, b: number): { user_lo: number, user_hi: number } {
  return a < b ? { user_lo: a, user_hi: b } : { user_lo: b, user_hi: a }
}

export async function getRelation (db: Kysely<Database>, a: number, b: number): Promise<Relation | undefined> {
  const { user_lo: lo, user_hi: hi } = pair(a, b)
  return await db.selectFrom('chat_requests')
    .select(['id', 'requester_id', 'requested_id', 'status'])
    .where('user_lo', '=', lo).where('user_hi', '=', hi)
    .executeTakeFirst()
}

export type RequestOutcome = 'requested' | 'accepted' | 'already_requested' | 'already_contacts'

/**
 * `requester` asks `requested` for a chat (a `chat_request` event for `requested`). If
 * `requested` had already asked `requester`, this accepts that request instead of
 * creating a mirror one.
 */
export async function requestChat (db: Kysely<Database>, requester: User, requested: User, now = Date.now()): Promise<RequestOutcome> {
  for (let attempt = 0; ; attempt++) {
    const relation = await getRelation(db, requester.id, requested.id)
    if (relation?.status === 'accepted') return 'already_contacts'
    if (relation !== undefined) {
      if (relation.requester_id === requester.id) return 'already_requested'
      if (await acceptChat(db, requested, requester, now)) return 'accepted'
      continue // it changed under us: look again
    }
    try {
      await db.transaction().execute(async trx => {
        await trx.insertInto('chat_requests')
          .values({ requester_id: requester.id, requested_id: requested.id, ...pair(requester.id, requested.id), status: 'pending', created_at: now, updated_at: now })
          .execute()
        await appendEvents(trx, [{ userId: requested.id, type: 'chat_request', payload: { requester_username: requester.username } }], now)
      })
      return 'requested'
    } catch (error) {
      // a concurrent request for the same pair won the insert: decide again from its row
      if (!isUniqueViolation(error) || attempt > 2) throw error
    }
  }
}

/**
 * Accepts the pending request of `requester` to `requested`, with a `chat_accepted` event
 * for each of them naming the other; false when there is no such request.
 */
export async function acceptChat (db: Kysely<Database>, requester: User, requested: User, now = Date.now()): Promise<boolean> {
  return await db.transaction().execute(async trx => {
    const result = await trx.updateTable('chat_requests')
      .set({ status: 'accepted', updated_at: now })
      .where('requester_id', '=', requester.id)
      .where('requested_id', '=', requested.id)
      .where('status', '=', 'pending')
      .executeTakeFirst()
    if (result.numUpdatedRows === 0n) return false
    await appendEvents(trx, [
      { userId: requester.id, type: 'chat_accepted', payload: { username: requested.username } },
      { userId: requested.id, type: 'chat_accepted', payload: { username: requester.username } }
    ], now)
    return true
  })
}

export async function listPendingRequests (db: Kysely<Database>, userId: number): Promise<Array<{ requester_username: string, created_at: number }>> {
  return await db.selectFrom('chat_requests')
    .innerJoin('users', 'users.id', 'chat_requests.requester_id')
    .select(['users.username as requester_username', 'chat_requests.created_at'])
    .where('chat_requests.requested_id', '=', userId)
    .where('chat_requests.status', '=', 'pending')
    .orderBy('chat_requests.id')
    .execute()
}

/** Usernames of the user's accepted contacts, whichever side asked. */
export async function listContacts (db: Kysely<Database>, userId: number): Promise<string[]> {
  const rows = await db.selectFrom('chat_requests')
    .innerJoin('users', join => join.on(eb => eb.or([
      eb.and([eb('chat_requests.user_lo', '=', userId), eb('users.id', '=', eb.ref('chat_requests.user_hi'))]),
      eb.and([eb('chat_requests.user_hi', '=', userId), eb('users.id', '=', eb.ref('chat_requests.user_lo'))])
    ])))
    .select('users.username')
    .where('chat_requests.status', '=', 'accepted')
    .where(eb => eb.or([eb('chat_requests.user_lo', '=', userId), eb('chat_requests.user_hi', '=', userId)]))
    .orderBy('users.username_key')
    .execute()
  return rows.map(row => row.username)
}

/** Ids of the user's accepted contacts. */
export async function listContactIds (db: Kysely<Database>, userId: number): Promise<number[]> {
  const rows = await db.selectFrom('chat_requests')
    .select(eb => eb.case().when('user_lo', '=', userId).then(eb.ref('user_hi')).else(eb.ref('user_lo')).end().as('id'))
    .where('status', '=', 'accepted')
    .where(eb => eb.or([eb('user_lo', '=', userId), eb('user_hi', '=', userId)]))
    .execute()
  return rows.map(row => Number(row.id))
}

export async function areContacts (db: Kysely<Database>, a: number, b: number): Promise<boolean> {
  return (await getRelation(db, a, b))?.status === 'accepted'
}
