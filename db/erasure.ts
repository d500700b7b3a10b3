import { randomBytes } from 'node:crypto'
import { sql, type Transaction } from 'kysely'
import { isPostgres } from './dialect.js'
import { appendEvents, type EventPayloads } from './events.js'
import type { Database } from './schema.js'

// What erasing an account removes, inside the caller's transaction: delete_account and the
// operator's delete (db/users.ts eraseUser, db/admin.ts deleteUser) both come here. When it
// commits, no table names the user: not their own rows, not their partners' events, not the
// audit log. What the files on disk still hold is the caller's business (truncateLog).

export interface Erased {
  /** Users told by a `contact_deleted` event (contacts, requests either way, blockers of the user): wake them. */
  notify: number[]
  /** What the audit log now says instead of the user's name, in the rows that named them. */
  auditId: string
}

/** A fresh id for an erased account in the audit log: random, so nothing leads back to the name. */
function newAuditId (): string {
  return `erased:${randomBytes(9).toString('base64url')}`
}

/** The fields of an event payload that name a user. */
const NAME_FIELDS = ['username', 'requester_username', 'sender_username', 'recipient_username', 'sourceUsername'] as const

function namesUser (payload: string, key: string): boolean {
  const fields = JSON.parse(payload) as Partial<Record<typeof NAME_FIELDS[number], unknown>>
  return NAME_FIELDS.some(field => typeof fields[field] === 'string' && (fields[field] as string).toLowerCase() === key)
}

/**
 * Erases the user with this id; undefined when there is none. Every message they sent or
 * received goes, both copies (their partners lose that history too), with their keys,
 * requests, contacts, blocks both ways, tokens, devices and their event streams. In their partners' streams
 * every event that names them goes too (each such event is about them alone; a gap in a
 * stream breaks no cursor, see routes/realtime/feed.ts), and each partner whose lists change
 * gets a `contact_deleted` event that does not say who. Audit rows that named them name
 * `auditId` instead; their import_map rows go, but for a tombstone of the user's own (see below).
 */
export async function eraseInTransaction (trx: Transaction<Database>, userId: number, now = Date.now()): Promise<Erased | undefined> {
  // PostgreSQL: the user and the partners to be told locked in id order, as appendEvents and
  // every send lock them, so that a concurrent send or acceptance cannot deadlock with this
  // (a partner who appears between this read and the lock is locked later, by appendEvents)
  if (isPostgres(trx)) {
    const partners = await partnersOf(trx, userId)
    await trx.selectFrom('users').select('id').where('id', 'in', [userId, ...partners]).orderBy('id').forUpdate().execute()
  }
  const user = await trx.selectFrom('users').select(['username', 'username_key', 'created_at']).where('id', '=', userId).executeTakeFirst()
  if (user === undefined) return undefined
  const key = user.username_key
  const notify = await partnersOf(trx, userId)

  const theirMessages = trx.selectFrom('messages').select('id').where(eb => eb.or([eb('sender_id', '=', userId), eb('recipient_id', '=', userId)]))
  await trx.deleteFrom('import_map').where('kind', '=', 'message').where('new_id', 'in', theirMessages).execute()
  // An imported user keeps a row that links to no account (new_id 0): without it the next
  // import of the same original database would bring them back. It names nobody; only with
  // the original database, which holds all of them anyway, does its original_id mean anyone.
  await trx.updateTable('import_map').set({ new_id: 0 }).where('kind', '=', 'user').where('new_id', '=', userId).execute()

  // their partners' message events, by their index, before the messages they point at
  await trx.deleteFrom('events').where('message_id', 'in', theirMessages).execute()
  await trx.deleteFrom('messages').where(eb => eb.or([eb('sender_id', '=', userId), eb('recipient_id', '=', userId)])).execute()
  // their envelopes both ways, and with them their partners' envelope events (by the foreign keys)
  await trx.deleteFrom('sends').where(eb => eb.or([eb('sender_id', '=', userId), eb('recipient_id', '=', userId)])).execute()
  await trx.deleteFrom('revoked_tokens').where('user_id', '=', userId).execute()
  // the foreign keys would cascade too; said here so that nothing is left to chance
  await trx.deleteFrom('blocks').where(eb => eb.or([eb('blocker_id', '=', userId), eb('blocked_id', '=', userId)])).execute()
  await trx.deleteFrom('chat_requests').where(eb => eb.or([eb('user_lo', '=', userId), eb('user_hi', '=', userId)])).execute()
  await trx.deleteFrom('public_keys').where('user_id', '=', userId).execute()
  const theirDevices = trx.selectFrom('devices').select('id').where('user_id', '=', userId)
  await deleteEventsNaming(trx, user)
  await trx.deleteFrom('events').where('device_id', 'in', theirDevices).execute()
  await trx.deleteFrom('devices').where('user_id', '=', userId).execute()

  const auditId = newAuditId()
  await trx.updateTable('admin_audit').set({ target: auditId }).where(sql<string>`lower(target)`, '=', key).execute()

  await trx.deleteFrom('users').where('id', '=', userId).execute()
  const told: EventPayloads['contact_deleted'] = {}
  await appendEvents(trx, notify.map(id => ({ userId: id, type: 'contact_deleted' as const, payload: told })), now)
  return { notify, auditId }
}

/** Whose lists the erasure changes: both sides of a request or contact, and those who blocked the user. */
async function partnersOf (trx: Transaction<Database>, userId: number): Promise<number[]> {
  const requests = await trx.selectFrom('chat_requests').select(['requester_id', 'requested_id'])
    .where(eb => eb.or([eb('user_lo', '=', userId), eb('user_hi', '=', userId)])).execute()
  // those the user blocked are not told: nothing they can see changes (a block is never revealed)
  const blockers = await trx.selectFrom('blocks').select('blocker_id').where('blocked_id', '=', userId).execute()
  const ids = new Set([...requests.flatMap(row => [row.requester_id, row.requested_id]), ...blockers.map(row => row.blocker_id)])
  ids.delete(userId)
  return [...ids].sort((a, b) => a - b)
}

// Events are stamped by the clock of the instance that wrote them: an hour's margin for clocks that disagree.
const CLOCK_MARGIN_MS = 3_600_000

/**
 * Deletes the events of other users whose payload names the user (a request, an acceptance,
 * a delivery...), found by their text and then checked field by field. Names are stored as
 * written (the same text in every event) and need no escaping in JSON. Only events written
 * since the account was created can name it (those of an earlier holder of the name went
 * with that account), but for an old account this reads most of the events table: about
 * 0.4 to 0.9 s per million events here, holding the database meanwhile (see docs/security.md).
 */
async function deleteEventsNaming (trx: Transaction<Database>, user: { username: string, username_key: string, created_at: number }): Promise<void> {
  // the user's own devices too: their own streams go whole afterwards anyway
  const candidates = await trx.selectFrom('events').select(['device_id', 'seq', 'payload'])
    .where('created_at', '>=', user.created_at - CLOCK_MARGIN_MS)
    .where('payload', 'like', `%"${user.username}"%`)
    .execute()
  const seqsOf = new Map<number, number[]>()
  for (const row of candidates) {
    if (!namesUser(row.payload, user.username_key)) continue
    const seqs = seqsOf.get(row.device_id) ?? []
    seqs.push(row.seq)
    seqsOf.set(row.device_id, seqs)
  }
  for (const [owner, seqs] of seqsOf) {
    for (let i = 0; i < seqs.length; i += 500) {
      await trx.deleteFrom('events').where('device_id', '=', owner).where('seq', 'in', seqs.slice(i, i + 500)).execute()
    }
  }
}
