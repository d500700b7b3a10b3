import { createHash } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { listContacts } from './contacts.js'
import { isPostgres } from './dialect.js'
import type { Database, RequestStatus } from './schema.js'
import { iso } from './time.js'
import { truncateLog } from './connect.js'
import { eraseInTransaction } from './erasure.js'
import { usernameKey, type User } from './users.js'

// What the admin CLI and the web console read and do. Both call these same functions, so an
// action means the same thing (and is audited the same way) whichever tool an operator uses.

const DAY_MS = 86_400_000

export interface Page<T> {
  page: number
  per_page: number
  total: number
  items: T[]
}

export interface PageOptions {
  page: number
  perPage: number
}

async function count (query: { executeTakeFirstOrThrow: () => Promise<{ n: number | string | bigint }> }): Promise<number> {
  return Number((await query.executeTakeFirstOrThrow()).n)
}

export interface Stats {
  users: number
  disabled_users: number
  public_keys: number
  contacts: number
  pending_requests: number
  messages: number
  database_bytes: number
  /** the last `days` UTC days, oldest first, days without messages included */
  messages_per_day: Array<{ day: string, messages: number }>
}

export async function getStats (db: Kysely<Database>, days = 14, now = Date.now()): Promise<Stats> {
  const countAll = <T extends 'users' | 'public_keys' | 'chat_requests' | 'messages'>(table: T) =>
    db.selectFrom(table as 'users').select(eb => eb.fn.countAll<number>().as('n'))
  const firstDay = Math.floor(now / DAY_MS) - days + 1
  const perDay = await db.selectFrom('messages')
    .select([sql<number>`created_at / ${sql.lit(DAY_MS)}`.as('day'), eb => eb.fn.countAll<number>().as('n')])
    .where('created_at', '>=', firstDay * DAY_MS)
    .groupBy(sql`created_at / ${sql.lit(DAY_MS)}`)
    .execute()
  const byDay = new Map(perDay.map(row => [Number(row.day), Number(row.n)]))
  return {
    users: await count(countAll('users')),
    disabled_users: await count(countAll('users').where('disabled_at', 'is not', null)),
    public_keys: await count(countAll('public_keys')),
    contacts: await count(db.selectFrom('chat_requests').select(eb => eb.fn.countAll<number>().as('n')).where('status', '=', 'accepted')),
    pending_requests: await count(db.selectFrom('chat_requests').select(eb => eb.fn.countAll<number>().as('n')).where('status', '=', 'pending')),
    messages: await count(countAll('messages')),
    database_bytes: await databaseSize(db),
    messages_per_day: Array.from({ length: days }, (_, i) => ({
      day: iso((firstDay + i) * DAY_MS).slice(0, 10),
      messages: byDay.get(firstDay + i) ?? 0
    }))
  }
}

/** Bytes on disk: the SQLite file's pages, or every table and index of our PostgreSQL schema. */
async function databaseSize (db: Kysely<Database>): Promise<number> {
  const query = isPostgres(db)
    ? sql<{ size: number | string | null }>`select sum(pg_total_relation_size(c.oid))::bigint as size from pg_class c
        join pg_namespace n on n.oid = c.relnamespace where n.nspname = current_schema() and c.relkind = 'r'`
    : sql<{ size: number }>`select page_count * page_size as size from pragma_page_count(), pragma_page_size()`
  const { rows } = await query.execute(db)
  return Number(rows[0]?.size ?? 0)
}

export interface UserSummary {
  id: number
  username: string
  created_at: number
  disabled_at: number | null
  has_key: boolean
  messages: number
}

/** Users whose name contains `search` (case-insensitively), by name. */
export async function listUsers (db: Kysely<Database>, search: string | undefined, { page, perPage }: PageOptions): Promise<Page<UserSummary>> {
  const pattern = search === undefined || search === '' ? undefined : `%${usernameKey(search).replace(/[\\%_]/g, c => '\\' + c)}%`
  const base = db.selectFrom('users')
    .$if(pattern !== undefined, qb => qb.where(sql<boolean>`username_key like ${pattern} escape '\\'`))
  const total = await count(base.select(eb => eb.fn.countAll<number>().as('n')))
  const rows = await base
    .select(eb => [
      'id', 'username', 'created_at', 'disabled_at',
      eb.exists(eb.selectFrom('public_keys').select('user_id').whereRef('public_keys.user_id', '=', 'users.id')).as('has_key'),
      eb.selectFrom('messages').select(eb => eb.fn.countAll<number>().as('n'))
        .where(eb => eb.or([eb('messages.sender_id', '=', eb.ref('users.id')), eb('messages.recipient_id', '=', eb.ref('users.id'))]))
        .as('messages')
    ])
    .orderBy('username_key')
    .limit(perPage).offset((page - 1) * perPage)
    .execute()
  const items = rows.map(row => ({ ...row, has_key: Boolean(row.has_key), messages: Number(row.messages ?? 0) }))
  return { page, per_page: perPage, total, items }
}

export interface UserDetail {
  id: number
  username: string
  created_at: number
  disabled_at: number | null
  /** SHA-256 of the public key, never the key itself */
  key_fingerprint: string | null
  key_updated_at: number | null
  contacts: string[]
  requests_sent_pending: number
  requests_received_pending: number
  messages_sent: number
  messages_received: number
  last_message_at: number | null
}

export function fingerprint (publicKey: string): string {
  return createHash('sha256').update(publicKey).digest('hex').match(/.{4}/g)!.join(':')
}

export async function getUserDetail (db: Kysely<Database>, username: string): Promise<UserDetail | undefined> {
  const user = await db.selectFrom('users').select(['id', 'username', 'created_at', 'disabled_at'])
    .where('username_key', '=', usernameKey(username)).executeTakeFirst()
  if (user === undefined) return undefined
  const key = await db.selectFrom('public_keys').select(['public_key', 'updated_at']).where('user_id', '=', user.id).executeTakeFirst()
  const pending = (column: 'requester_id' | 'requested_id') => count(db.selectFrom('chat_requests')
    .select(eb => eb.fn.countAll<number>().as('n')).where(column, '=', user.id).where('status', '=', 'pending'))
  const messages = (column: 'sender_id' | 'recipient_id') => count(db.selectFrom('messages')
    .select(eb => eb.fn.countAll<number>().as('n')).where(column, '=', user.id))
  const last = await db.selectFrom('messages').select(eb => eb.fn.max('created_at').as('at'))
    .where(eb => eb.or([eb('sender_id', '=', user.id), eb('recipient_id', '=', user.id)]))
    .executeTakeFirst()
  return {
    ...user,
    key_fingerprint: key === undefined ? null : fingerprint(key.public_key),
    key_updated_at: key?.updated_at ?? null,
    contacts: await listContacts(db, user.id),
    requests_sent_pending: await pending('requester_id'),
    requests_received_pending: await pending('requested_id'),
    messages_sent: await messages('sender_id'),
    messages_received: await messages('recipient_id'),
    last_message_at: last?.at === null || last?.at === undefined ? null : Number(last.at)
  }
}

export interface RequestRow {
  id: number
  requester: string
  requested: string
  status: RequestStatus
  created_at: number
  updated_at: number
}

export async function listRequests (
  db: Kysely<Database>, filter: { status: RequestStatus | 'all', userId?: number | undefined }, { page, perPage }: PageOptions
): Promise<Page<RequestRow>> {
  const base = db.selectFrom('chat_requests')
    .$if(filter.status !== 'all', qb => qb.where('status', '=', filter.status as RequestStatus))
    .$if(filter.userId !== undefined, qb => qb.where(eb => eb.or([eb('user_lo', '=', filter.userId!), eb('user_hi', '=', filter.userId!)])))
  const total = await count(base.select(eb => eb.fn.countAll<number>().as('n')))
  const items = await base
    .innerJoin('users as a', 'a.id', 'chat_requests.requester_id')
    .innerJoin('users as b', 'b.id', 'chat_requests.requested_id')
    .select(['chat_requests.id', 'a.username as requester', 'b.username as requested', 'status', 'chat_requests.created_at', 'chat_requests.updated_at'])
    .orderBy('chat_requests.id', 'desc')
    .limit(perPage).offset((page - 1) * perPage)
    .execute()
  return { page, per_page: perPage, total, items }
}

export interface MessageRow {
  id: number
  sender: string
  recipient: string
  created_at: number
  sender_blob_length: number
  recipient_blob_length: number
}

/** Message metadata, newest first: never a blob, only its length. */
export async function listMessages (
  db: Kysely<Database>, filter: { userId?: number | undefined, since?: number | undefined, beforeId?: number | undefined }, limit: number
): Promise<MessageRow[]> {
  const rows = await db.selectFrom('messages')
    .innerJoin('users as s', 's.id', 'messages.sender_id')
    .innerJoin('users as r', 'r.id', 'messages.recipient_id')
    .select(eb => [
      'messages.id', 's.username as sender', 'r.username as recipient', 'messages.created_at',
      eb.fn<number>('length', ['messages.sender_blob']).as('sender_blob_length'),
      eb.fn<number>('length', ['messages.recipient_blob']).as('recipient_blob_length')
    ])
    .$if(filter.userId !== undefined, qb => qb.where(eb => eb.or([eb('messages.sender_id', '=', filter.userId!), eb('messages.recipient_id', '=', filter.userId!)])))
    .$if(filter.since !== undefined, qb => qb.where('messages.created_at', '>=', filter.since!))
    .$if(filter.beforeId !== undefined, qb => qb.where('messages.id', '<', filter.beforeId!))
    .orderBy('messages.id', 'desc')
    .limit(limit)
    .execute()
  return rows.map(row => ({ ...row, sender_blob_length: Number(row.sender_blob_length), recipient_blob_length: Number(row.recipient_blob_length) }))
}

export interface AuditEntry {
  actor: string
  action: string
  target: string | null
  detail: string | null
}

export async function recordAudit (db: Kysely<Database>, entry: AuditEntry, now = Date.now()): Promise<void> {
  await db.insertInto('admin_audit').values({ ...entry, created_at: now }).execute()
}

export async function listAudit (db: Kysely<Database>, { page, perPage }: PageOptions): Promise<Page<AuditEntry & { id: number, created_at: number }>> {
  const total = await count(db.selectFrom('admin_audit').select(eb => eb.fn.countAll<number>().as('n')))
  const items = await db.selectFrom('admin_audit').select(['id', 'created_at', 'actor', 'action', 'target', 'detail'])
    .orderBy('id', 'desc').limit(perPage).offset((page - 1) * perPage).execute()
  return { page, per_page: perPage, total, items }
}

export type ActionOutcome = 'done' | 'unchanged' | 'not_found'

/**
 * Disables or re-enables a user (a disabled user cannot log in; its tokens stop working),
 * audited. The caller names the user by id, as found once: a name looked up again here could
 * by now belong to someone who registered it after a deletion.
 */
export async function setUserDisabled (db: Kysely<Database>, user: User, disabled: boolean, actor: string, now = Date.now()): Promise<ActionOutcome> {
  return await db.transaction().execute(async trx => {
    const result = await trx.updateTable('users')
      .set({ disabled_at: disabled ? now : null })
      .where('id', '=', user.id)
      .where('disabled_at', disabled ? 'is' : 'is not', null)
      .executeTakeFirst()
    if (result.numUpdatedRows === 0n) {
      const exists = await trx.selectFrom('users').select('id').where('id', '=', user.id).executeTakeFirst()
      return exists === undefined ? 'not_found' : 'unchanged'
    }
    await recordAudit(trx, { actor, action: disabled ? 'disable-user' : 'enable-user', target: user.username, detail: null }, now)
    return 'done'
  })
}

/**
 * Erases a user, by id, exactly as delete_account does (keys, requests, both copies of every
 * message, partners' events naming them), audited in the same transaction: under the opaque
 * id that replaces their name in the audit log, never the name itself.
 */
export async function deleteUser (db: Kysely<Database>, user: User, actor: string, now = Date.now()): Promise<ActionOutcome> {
  return (await eraseAudited(db, user, actor, now)).outcome
}

/** deleteUser, with the partners to wake (they got a `contact_deleted` event). */
export async function eraseAudited (db: Kysely<Database>, user: User, actor: string, now = Date.now()): Promise<{ outcome: ActionOutcome, notify: number[] }> {
  const erased = await db.transaction().execute(async trx => {
    const done = await eraseInTransaction(trx, user.id, now)
    if (done !== undefined) await recordAudit(trx, { actor, action: 'delete-user', target: done.auditId, detail: null }, now)
    return done
  })
  if (erased === undefined) return { outcome: 'not_found', notify: [] }
  await truncateLog(db)
  return { outcome: 'done', notify: erased.notify }
}
