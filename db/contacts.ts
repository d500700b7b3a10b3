import type { Kysely, Transaction } from 'kysely'
import { isPostgres, isUniqueViolation } from './dialect.js'
import { appendEvents, type NewEvent } from './events.js'
import { precompile } from './perf/precompiled.js'
import type { Database, RequestStatus } from './schema.js'
import { usernameKey, type User } from './users.js'

// A pair of users has at most one chat_requests row, keyed by (user_lo, user_hi):
// pending (requester asked requested) or accepted (they are contacts). Each change and the
// events it gives (db/events.ts) commit in one transaction; callers publish after commit.
// A block is never revealed (docs/security.md): to the blocked side it looks like what the
// blocker could have done without blocking (remove, decline, cancel), and everything the
// blocked user does afterwards is answered as it would be by someone who did that; nothing
// done by a blocked user gives the blocker an event.

export interface Relation {
  id: number
  requester_id: number
  requested_id: number
  status: RequestStatus
}

function pair (a: number, b: number): { user_lo: number, user_hi: number } {
  return a < b ? { user_lo: a, user_hi: b } : { user_lo: b, user_hi: a }
}

async function getRelation (db: Kysely<Database>, a: number, b: number): Promise<Relation | undefined> {
  const { user_lo: lo, user_hi: hi } = pair(a, b)
  return await db.selectFrom('chat_requests')
    .select(['id', 'requester_id', 'requested_id', 'status'])
    .where('user_lo', '=', lo).where('user_hi', '=', hi)
    .executeTakeFirst()
}

export type RequestOutcome = 'requested' | 'accepted' | 'already_requested' | 'already_contacts' | 'blocked_by_you'

export interface RequestResult {
  outcome: RequestOutcome
  /**
   * Users to wake after commit: those who got an event, and the recipient of a request hidden
   * by a block too (it finds nothing new), so that a hidden request costs what a visible one does.
   */
  notified: number[]
}

/**
 * `requester` asks `requested` for a chat, in one transaction, with a `chat_request` event
 * for `requested`. If `requested` had already asked `requester`, this accepts that request
 * instead of creating a mirror one. When `requested` has blocked `requester`, the request
 * is stored as any other (so asking twice gets the same answer as from a stranger) but
 * stays hidden from `requested`: no event.
 */
export async function requestChat (db: Kysely<Database>, requester: User, requested: User, now = Date.now()): Promise<RequestResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await db.transaction().execute(trx => requestChatOnce(trx, requester, requested, now))
      if (result !== 'changed') return result
    } catch (error) {
      // a concurrent request for the same pair won the insert: decide again from its row
      if (!isUniqueViolation(error)) throw error
    }
    if (attempt > 2) throw new Error('chat request kept changing under us')
  }
}

async function requestChatOnce (trx: Transaction<Database>, requester: User, requested: User, now: number): Promise<RequestResult | 'changed'> {
  const none = (outcome: RequestOutcome): RequestResult => ({ outcome, notified: [] })
  if (await isBlocked(trx, requester.id, requested.id)) return none('blocked_by_you')
  const relation = await getRelation(trx, requester.id, requested.id)
  if (relation?.status === 'accepted') return none('already_contacts')
  if (relation !== undefined) {
    if (relation.requester_id === requester.id) return none('already_requested')
    if (await acceptPending(trx, requested, requester, now)) return { outcome: 'accepted', notified: [requested.id, requester.id] }
    // refused because they block us: to us it looks like any request sent
    return await isBlocked(trx, requested.id, requester.id) ? await hidden(trx, requested.id) : 'changed'
  }
  await trx.insertInto('chat_requests')
    .values({ requester_id: requester.id, requested_id: requested.id, ...pair(requester.id, requested.id), status: 'pending', created_at: now, updated_at: now })
    .execute()
  if (await isBlocked(trx, requested.id, requester.id)) return await hidden(trx, requested.id)
  await appendEvents(trx, [{ userId: requested.id, type: 'chat_request', payload: { requester_username: requester.username } }], now)
  return { outcome: 'requested', notified: [requested.id] }
}

/** A request hidden from `requestedId` by their block, answered after the work a visible one does. */
async function hidden (trx: Transaction<Database>, requestedId: number): Promise<RequestResult> {
  await appendNoEvent(trx, requestedId)
  return { outcome: 'requested', notified: [requestedId] }
}

/**
 * The statements of appending one event for `userId` (appendEvents), without their effect:
 * its row written back as it was, and a lookup in its stream where the insert would go. What
 * is hidden from a blocker costs as many statements and round trips as what is not, so that
 * the time of an answer does not tell a block (an UPDATE and a SELECT instead of an UPDATE and
 * an INSERT: close, not equal).
 */
async function appendNoEvent (trx: Transaction<Database>, userId: number): Promise<void> {
  const row = await trx.updateTable('devices')
    .set(eb => ({ event_seq: eb.ref('event_seq') }))
    .where('user_id', '=', userId)
    .returning(['id', 'event_seq'])
    .executeTakeFirst()
  await trx.selectFrom('events').select('seq').where('device_id', '=', row?.id ?? 0).where('seq', '=', (row?.event_seq ?? 0) + 1).executeTakeFirst()
}

/**
 * Accepts the pending request of `requester` to `requested`, with a `chat_accepted` event
 * for each of them naming the other; false when there is none (or it is hidden by a block).
 */
export async function acceptChat (db: Kysely<Database>, requester: User, requested: User, now = Date.now()): Promise<boolean> {
  return await db.transaction().execute(trx => acceptPending(trx, requester, requested, now))
}

async function acceptPending (trx: Transaction<Database>, requester: User, requested: User, now: number): Promise<boolean> {
  const result = await trx.updateTable('chat_requests')
    .set({ status: 'accepted', updated_at: now })
    .where('requester_id', '=', requester.id)
    .where('requested_id', '=', requested.id)
    .where('status', '=', 'pending')
    .where(eb => eb.not(eb.exists(blockBetween(trx, requester.id, requested.id))))
    .executeTakeFirst()
  if (result.numUpdatedRows === 0n) return false
  await appendEvents(trx, [
    { userId: requester.id, type: 'chat_accepted', payload: { username: requested.username } },
    { userId: requested.id, type: 'chat_accepted', payload: { username: requester.username } }
  ], now)
  return true
}

/**
 * `decliner` declines (deletes) the pending request of `requester`, with a `chat_declined`
 * event for `requester`; false when there is none visible.
 */
export async function declineChat (db: Kysely<Database>, requester: User, decliner: User, now = Date.now()): Promise<boolean> {
  return await db.transaction().execute(async trx => {
    if (!await deletePending(trx, requester.id, decliner.id, true)) return false
    await appendEvents(trx, [{ userId: requester.id, type: 'chat_declined', payload: { username: decliner.username } }], now)
    return true
  })
}

/**
 * `requester` withdraws its own pending request to `requested`, with a `request_cancelled`
 * event for `requested` (not when `requested` blocks `requester`: they never saw it); false
 * when there is none.
 */
export async function cancelRequest (db: Kysely<Database>, requester: User, requested: User, now = Date.now()): Promise<CancelResult> {
  return await db.transaction().execute(async trx => {
    if (!await deletePending(trx, requester.id, requested.id, false)) return { cancelled: false, notified: [] }
    // never seen by them: no event, after the same work (and wake-up) as one
    if (await isBlocked(trx, requested.id, requester.id)) {
      await appendNoEvent(trx, requested.id)
      return { cancelled: true, notified: [requested.id] }
    }
    await appendEvents(trx, [{ userId: requested.id, type: 'request_cancelled', payload: { username: requester.username } }], now)
    return { cancelled: true, notified: [requested.id] }
  })
}

export interface CancelResult {
  /** false when there was no pending request to withdraw */
  cancelled: boolean
  /** Users to wake after commit: the recipient, also when the request was hidden from them (see RequestResult). */
  notified: number[]
}

/**
 * Deletes the pending request of `requesterId` to `requestedId`; with `visibleOnly`, not one
 * hidden from `requestedId` by their block. Whether there was one.
 */
async function deletePending (trx: Transaction<Database>, requesterId: number, requestedId: number, visibleOnly: boolean): Promise<boolean> {
  let query = trx.deleteFrom('chat_requests')
    .where('requester_id', '=', requesterId)
    .where('requested_id', '=', requestedId)
    .where('status', '=', 'pending')
  if (visibleOnly) query = query.where(eb => eb.not(eb.exists(blockBy(trx, requestedId, requesterId))))
  const result = await query.executeTakeFirst()
  return result.numDeletedRows > 0n
}

/**
 * Ends an accepted contact, from either side, with a `contact_removed` event for both (the
 * remover's other devices learn it too); false when they were not contacts.
 */
export async function removeContact (db: Kysely<Database>, me: User, other: User, now = Date.now()): Promise<boolean> {
  return await db.transaction().execute(async trx => {
    const { user_lo: lo, user_hi: hi } = pair(me.id, other.id)
    const result = await trx.deleteFrom('chat_requests')
      .where('user_lo', '=', lo).where('user_hi', '=', hi)
      .where('status', '=', 'accepted')
      .executeTakeFirst()
    if (result.numDeletedRows === 0n) return false
    await appendEvents(trx, [
      { userId: other.id, type: 'contact_removed', payload: { username: me.username } },
      { userId: me.id, type: 'contact_removed', payload: { username: other.username } }
    ], now)
    return true
  })
}

export interface BlockOutcome {
  /** false when `blocker` had already blocked `blocked` (then nothing changed) */
  newlyBlocked: boolean
  /** Users who got an event (to wake after commit). */
  notified: number[]
}

/**
 * `blocker` blocks `blocked`, in one transaction: the block row, and the end of whatever
 * was between them, with the events of the ordinary action it looks like to `blocked`: an
 * accepted contact ends as by remove_contact (`contact_removed` to both), a request from
 * `blocked` as by decline_chat (`chat_declined` to them), a request from `blocker` as by
 * cancel_request (`request_cancelled` to them). Blocking again changes nothing: a request
 * `blocked` sent since stays as they believe it is, pending and unanswered.
 */
export async function blockUser (db: Kysely<Database>, blocker: User, blocked: User, now = Date.now()): Promise<BlockOutcome> {
  return await db.transaction().execute(async trx => {
    const inserted = await trx.insertInto('blocks')
      .values({ blocker_id: blocker.id, blocked_id: blocked.id, created_at: now })
      .onConflict(oc => oc.columns(['blocker_id', 'blocked_id']).doNothing())
      .executeTakeFirst()
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 0) return { newlyBlocked: false, notified: [] }
    const { user_lo: lo, user_hi: hi } = pair(blocker.id, blocked.id)
    const ended = await trx.deleteFrom('chat_requests')
      .where('user_lo', '=', lo).where('user_hi', '=', hi)
      .returning(['status', 'requester_id'])
      .executeTakeFirst()
    const events = ended === undefined ? [] : await imitation(trx, blocker, blocked, ended)
    await appendEvents(trx, events, now)
    return { newlyBlocked: true, notified: events.map(event => event.userId) }
  })
}

/** The events of the ordinary action that ends `ended` as the block did (see blockUser). */
async function imitation (trx: Transaction<Database>, blocker: User, blocked: User, ended: Pick<Relation, 'status' | 'requester_id'>): Promise<NewEvent[]> {
  if (ended.status === 'accepted') {
    return [
      { userId: blocked.id, type: 'contact_removed', payload: { username: blocker.username } },
      { userId: blocker.id, type: 'contact_removed', payload: { username: blocked.username } }
    ]
  }
  if (ended.requester_id === blocked.id) return [{ userId: blocked.id, type: 'chat_declined', payload: { username: blocker.username } }]
  // our request, hidden by their own block of us: they never saw it, so it ends without a word
  if (await isBlocked(trx, blocked.id, blocker.id)) return []
  return [{ userId: blocked.id, type: 'request_cancelled', payload: { username: blocker.username } }]
}

/**
 * Lifts a block, in one transaction. A request the blocked user sent meanwhile, which they
 * believe pending and unanswered, becomes what they believe it is: a pending request the
 * unblocker sees (get_chat_requests, and a `chat_request` event now, as it would have come)
 * and may accept or decline. A contact ended by the block is not restored. False when there
 * was no block; `notified` lists who got an event.
 */
export async function unblockUser (db: Kysely<Database>, blocker: User, blockedId: number, now = Date.now()): Promise<{ unblocked: boolean, notified: number[] }> {
  return await db.transaction().execute(async trx => {
    const result = await trx.deleteFrom('blocks')
      .where('blocker_id', '=', blocker.id).where('blocked_id', '=', blockedId)
      .executeTakeFirst()
    if (result.numDeletedRows === 0n) return { unblocked: false, notified: [] }
    const hidden = await trx.selectFrom('chat_requests')
      .innerJoin('users', 'users.id', 'chat_requests.requester_id')
      .select('users.username')
      .where('requester_id', '=', blockedId).where('requested_id', '=', blocker.id)
      .where('status', '=', 'pending')
      .executeTakeFirst()
    if (hidden === undefined) return { unblocked: true, notified: [] }
    await appendEvents(trx, [{ userId: blocker.id, type: 'chat_request', payload: { requester_username: hidden.username } }], now)
    return { unblocked: true, notified: [blocker.id] }
  })
}

async function isBlocked (db: Kysely<Database>, blockerId: number, blockedId: number): Promise<boolean> {
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
  const rows = await contactNames.rows(db, { userId })
  return rows.map(row => row.username)
}

// every get_contacts runs it: built and compiled once
const contactNames = precompile((db, p: { userId: number }) => db.selectFrom('chat_requests')
  .innerJoin('users', join => join.on(eb => eb.or([
    eb.and([eb('chat_requests.user_lo', '=', p.userId), eb('users.id', '=', eb.ref('chat_requests.user_hi'))]),
    eb.and([eb('chat_requests.user_hi', '=', p.userId), eb('users.id', '=', eb.ref('chat_requests.user_lo'))])
  ])))
  .select('users.username')
  .where('chat_requests.status', '=', 'accepted')
  .where(eb => eb.or([eb('chat_requests.user_lo', '=', p.userId), eb('chat_requests.user_hi', '=', p.userId)]))
  .orderBy('users.username_key'))

/** Ids of the user's accepted contacts. */
export async function listContactIds (db: Kysely<Database>, userId: number): Promise<number[]> {
  const rows = await db.selectFrom('chat_requests')
    .select(eb => eb.case().when('user_lo', '=', userId).then(eb.ref('user_hi')).else(eb.ref('user_lo')).end().as('id'))
    .where('status', '=', 'accepted')
    .where(eb => eb.or([eb('user_lo', '=', userId), eb('user_hi', '=', userId)]))
    .execute()
  return rows.map(row => Number(row.id))
}

export interface Recipient extends User {
  /** An accepted contact of the sender, with no block either way. */
  contact: boolean
}

/**
 * The user named `username` (any case), and whether they and `senderId` are accepted
 * contacts with no block either way (a block ends a contact; this also holds against a
 * race), in one query; undefined for no such user.
 */
export async function findRecipient (db: Kysely<Database>, senderId: number, username: string): Promise<Recipient | undefined> {
  const row = await recipient.first(db, { senderId, key: usernameKey(username) })
  return row === undefined ? undefined : { id: row.id, username: row.username, contact: Boolean(row.contact) }
}

/**
 * findRecipient's answer with the user's public key (null until they upload one), in the
 * same query: get_key needs both, and on PostgreSQL a second query is a second round trip.
 */
export async function findRecipientKey (db: Kysely<Database>, senderId: number, username: string): Promise<(Recipient & { public_key: string | null }) | undefined> {
  const row = await recipientKey.first(db, { senderId, key: usernameKey(username) })
  return row === undefined ? undefined : { id: row.id, username: row.username, contact: Boolean(row.contact), public_key: row.public_key }
}

// every send_message runs it: built and compiled once. Each lookup is one equality on an
// index (the pair's lower id first, as stored): an OR of the two orders cost SQLite three
// times as much (a multi-index OR).
const recipient = precompile((db, p: { senderId: number, key: string }) => recipientQuery(db, p))

// every get_key runs it: built and compiled once
const recipientKey = precompile((db, p: { senderId: number, key: string }) => recipientQuery(db, p)
  .leftJoin('public_keys', 'public_keys.user_id', 'users.id')
  .select('public_keys.public_key'))

function recipientQuery (db: Kysely<Database>, p: { senderId: number, key: string }) {
  const [lower, higher] = isPostgres(db) ? ['least', 'greatest'] : ['min', 'max']
  return db.selectFrom('users')
    .select(eb => [
      'users.id', 'users.username',
      eb.and([
        eb.exists(eb.selectFrom('chat_requests').select('chat_requests.id')
          .where('chat_requests.user_lo', '=', eb.fn<number>(lower, [eb.val(p.senderId), eb.ref('users.id')]))
          .where('chat_requests.user_hi', '=', eb.fn<number>(higher, [eb.val(p.senderId), eb.ref('users.id')]))
          .where('chat_requests.status', '=', 'accepted')),
        eb.not(eb.exists(eb.selectFrom('blocks').select('blocks.blocker_id')
          .where('blocks.blocker_id', '=', p.senderId).whereRef('blocks.blocked_id', '=', 'users.id'))),
        eb.not(eb.exists(eb.selectFrom('blocks').select('blocks.blocker_id')
          .whereRef('blocks.blocker_id', '=', 'users.id').where('blocks.blocked_id', '=', p.senderId)))
      ]).as('contact')
    ])
    .where('users.username_key', '=', p.key)
}
