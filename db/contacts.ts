import type { Kysely } from 'kysely'
import { isUniqueViolation } from './errors.js'
import type { Database, RequestStatus } from './schema.js'

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
 * `requester` asks `requested` for a chat. If `requested` had already asked `requester`,
 * this accepts that request instead of creating a mirror one.
 */
export async function requestChat (db: Kysely<Database>, requesterId: number, requestedId: number, now = Date.now()): Promise<RequestOutcome> {
  for (let attempt = 0; ; attempt++) {
    const relation = await getRelation(db, requesterId, requestedId)
    if (relation?.status === 'accepted') return 'already_contacts'
    if (relation !== undefined) {
      if (relation.requester_id === requesterId) return 'already_requested'
      if (await acceptChat(db, relation.requester_id, requesterId, now)) return 'accepted'
      continue // it changed under us: look again
    }
    try {
      await db.insertInto('chat_requests')
        .values({ requester_id: requesterId, requested_id: requestedId, ...pair(requesterId, requestedId), status: 'pending', created_at: now, updated_at: now })
        .execute()
      return 'requested'
    } catch (error) {
      // a concurrent request for the same pair won the insert: decide again from its row
      if (!isUniqueViolation(error) || attempt > 2) throw error
    }
  }
}

/** Accepts the pending request of `requester` to `requested`; false when there is none. */
export async function acceptChat (db: Kysely<Database>, requesterId: number, requestedId: number, now = Date.now()): Promise<boolean> {
  const result = await db.updateTable('chat_requests')
    .set({ status: 'accepted', updated_at: now })
    .where('requester_id', '=', requesterId)
    .where('requested_id', '=', requestedId)
    .where('status', '=', 'pending')
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
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

export async function areContacts (db: Kysely<Database>, a: number, b: number): Promise<boolean> {
  return (await getRelation(db, a, b))?.status === 'accepted'
}
