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

export type RequestOutcome = 'requested' | 'accepted' | 'already_requested' | 'already_contacts' | 'blocked_by_you'

/**
 * `requester` asks `requested` for a chat, in one transaction. If `requested` had already
 * asked `requester`, this accepts that request instead of creating a mirror one. When
 * `requested` has blocked `requester`, the request is stored as any other (so asking twice
 * gets the same answer as from a stranger) but stays hidden from `requested`.
 */
export async function requestChat (db: Kysely<Database>, requesterId: number, requestedId: number, now = Date.now()): Promise<RequestOutcome> {
  for (let attempt = 0; ; attempt++) {
    try {
      const outcome = await db.transaction().execute(trx => requestChatOnce(trx, requesterId, requestedId, now))
      if (outcome !== 'changed') return outcome
    } catch (error) {
      // a concurrent request for the same pair won the insert: decide again from its row
      if (!isUniqueViolation(error)) throw error
    }
    if (attempt > 2) throw new Error('chat request kept changing under us')
  }
}

async function requestChatOnce (trx: Kysely<Database>, requesterId: number, requestedId: number, now: number): Promise<RequestOutcome | 'changed'> {
  if (await isBlocked(trx, requesterId, requestedId)) return 'blocked_by_you'
  const relation = await getRelation(trx, requesterId, requestedId)
  if (relation?.status === 'accepted') return 'already_contacts'
  if (relation !== undefined) {
    if (relation.requester_id === requesterId) return 'already_requested'
    if (await acceptPending(trx, relation.requester_id, requesterId, now)) return 'accepted'
    // refused because they block us: to us it looks like any request sent
    return await isBlocked(trx, requestedId, requesterId) ? 'requested' : 'changed'
  }
  await trx.insertInto('chat_requests')
    .values({ requester_id: requesterId, requested_id: requestedId, ...pair(requesterId, requestedId), status: 'pending', created_at: now, updated_at: now })
    .execute()
  return 'requested'
}

/** Accepts the pending request of `requester` to `requested`; false when there is none (or it is hidden by a block). */
export async function acceptChat (db: Kysely<Database>, requesterId: number, requestedId: number, now = Date.now()): Promise<boolean> {
  return await db.transaction().execute(trx => acceptPending(trx, requesterId, requestedId, now))
}

async function acceptPending (trx: Kysely<Database>, requesterId: number, requestedId: number, now: number): Promise<boolean> {
  const result = await trx.updateTable('chat_requests')
    .set({ status: 'accepted', updated_at: now })
    .where('requester_id', '=', requesterId)
    .where('requested_id', '=', requestedId)
    .where('status', '=', 'pending')
    .where(eb => eb.not(eb.exists(blockBetween(trx, requesterId, requestedId))))
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Declines (deletes) the pending request of `requester` to `requested`; false when there is none visible. */
export async function declineChat (db: Kysely<Database>, requesterId: number, requestedId: number): Promise<boolean> {
  return await db.transaction().execute(async trx => {
    const result = await trx.deleteFrom('chat_requests')
      .where('requester_id', '=', requesterId)
      .where('requested_id', '=', requestedId)
      .where('status', '=', 'pending')
      .where(eb => eb.not(eb.exists(blockBy(trx, requestedId, requesterId))))
      .executeTakeFirst()
    return result.numDeletedRows > 0n
  })
}

/** Ends an accepted contact, from either side; false when they were not contacts. */
export async function removeContact (db: Kysely<Database>, a: number, b: number): Promise<boolean> {
  return await db.transaction().execute(async trx => {
    const { user_lo: lo, user_hi: hi } = pair(a, b)
    const result = await trx.deleteFrom('chat_requests')
      .where('user_lo', '=', lo).where('user_hi', '=', hi)
      .where('status', '=', 'accepted')
      .executeTakeFirst()
    return result.numDeletedRows > 0n
  })
}

export interface BlockOutcome {
  /** false when `blocker` had already blocked `blocked` */
  newlyBlocked: boolean
  /** they were accepted contacts, and no longer are */
  endedContact: boolean
}

/**
 * `blocker` blocks `blocked`, in one transaction: the block row, and the end of whatever
 * was between them (a contact, or a pending request either way).
 */
export async function blockUser (db: Kysely<Database>, blockerId: number, blockedId: number, now = Date.now()): Promise<BlockOutcome> {
  return await db.transaction().execute(async trx => {
    const inserted = await trx.insertInto('blocks')
      .values({ blocker_id: blockerId, blocked_id: blockedId, created_at: now })
      .onConflict(oc => oc.columns(['blocker_id', 'blocked_id']).doNothing())
      .executeTakeFirst()
    const { user_lo: lo, user_hi: hi } = pair(blockerId, blockedId)
    const ended = await trx.deleteFrom('chat_requests')
      .where('user_lo', '=', lo).where('user_hi', '=', hi)
      .returning('status')
      .execute()
    return { newlyBlocked: Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0, endedContact: ended.some(row => row.status === 'accepted') }
  })
}

/**
 * Lifts a block, in one transaction. A request the blocked user sent meanwhile was never
 * shown: it goes away as if declined, so they may ask again. False when there was no block.
 */
export async function unblockUser (db: Kysely<Database>, blockerId: number, blockedId: number): Promise<boolean> {
  return await db.transaction().execute(async trx => {
    const result = await trx.deleteFrom('blocks')
      .where('blocker_id', '=', blockerId).where('blocked_id', '=', blockedId)
      .executeTakeFirst()
    if (result.numDeletedRows === 0n) return false
    await trx.deleteFrom('chat_requests')
      .where('requester_id', '=', blockedId).where('requested_id', '=', blockerId)
      .where('status', '=', 'pending')
      .execute()
    return true
  })
}

export async function isBlocked (db: Kysely<Database>, blockerId: number, blockedId: number): Promise<boolean> {
  return await blockBy(db, blockerId, blockedId).executeTakeFirst() !== undefined
}

/** The users `userId` has blocked, with when, by name. */
export async function listBlocked (db: Kysely<Database>, userId: number): Promise<Array<{ username: string, created_at: number }>> {
  return await db.selectFrom('blocks')
    .innerJoin('users', 'users.id', 'blocks.blocked_id')
    .select(['users.username', 'blocks.created_at'])
    .where('blocks.blocker_id', '=', userId)
    .orderBy('users.username_key')
    .execute()
}

function blockBy (db: Kysely<Database>, blockerId: number, blockedId: number) {
  return db.selectFrom('blocks').select('blocker_id')
    .where('blocker_id', '=', blockerId).where('blocked_id', '=', blockedId)
}

function blockBetween (db: Kysely<Database>, a: number, b: number) {
  return db.selectFrom('blocks').select('blocker_id')
    .where(eb => eb.or([
      eb.and([eb('blocker_id', '=', a), eb('blocked_id', '=', b)]),
      eb.and([eb('blocker_id', '=', b), eb('blocked_id', '=', a)])
    ]))
}

export async function listPendingRequests (db: Kysely<Database>, userId: number): Promise<Array<{ requester_username: string, created_at: number }>> {
  return await db.selectFrom('chat_requests')
    .innerJoin('users', 'users.id', 'chat_requests.requester_id')
    .select(['users.username as requester_username', 'chat_requests.created_at'])
    .where('chat_requests.requested_id', '=', userId)
    .where('chat_requests.status', '=', 'pending')
    // requests from users you blocked are never shown to you
    .where(eb => eb.not(eb.exists(eb.selectFrom('blocks').select('blocker_id')
      .where('blocks.blocker_id', '=', userId).whereRef('blocks.blocked_id', '=', 'chat_requests.requester_id'))))
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

/** Accepted contacts with no block either way (a block ends a contact; this also holds against a race). */
export async function areContacts (db: Kysely<Database>, a: number, b: number): Promise<boolean> {
  if ((await getRelation(db, a, b))?.status !== 'accepted') return false
  return await blockBetween(db, a, b).executeTakeFirst() === undefined
}
