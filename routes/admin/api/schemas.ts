import { Type, type TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../../../db/schema.js'
import { recordAudit } from '../../../db/admin.js'
import { requireUser } from '../../../db/users.js'
import { Timestamp, Username } from '../../schemas.js'

// The admin API's building blocks. Times are ISO 8601 strings, as everywhere on the wire.

export const PageQuery = {
  page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
  per_page: Type.Integer({ minimum: 1, maximum: 500, default: 50 })
}

export function PageReply<T extends TSchema> (item: T) {
  return Type.Object({ page: Type.Integer(), per_page: Type.Integer(), total: Type.Integer(), items: Type.Array(item) })
}

export const UserParams = Type.Object({ username: Username })

const NullableTime = Type.Union([Timestamp, Type.Null()])

export const UserSummary = Type.Object({
  id: Type.Integer(),
  username: Type.String(),
  created_at: Timestamp,
  disabled_at: NullableTime,
  has_key: Type.Boolean(),
  messages: Type.Integer({ description: 'messages sent or received' })
})

export const UserDetail = Type.Object({
  id: Type.Integer(),
  username: Type.String(),
  created_at: Timestamp,
  disabled_at: NullableTime,
  key_fingerprint: Type.Union([Type.String({ description: 'SHA-256 of the public key' }), Type.Null()]),
  key_updated_at: NullableTime,
  contacts: Type.Array(Type.String()),
  requests_sent_pending: Type.Integer(),
  requests_received_pending: Type.Integer(),
  messages_sent: Type.Integer(),
  messages_received: Type.Integer(),
  last_message_at: NullableTime
})

export const ActionReply = Type.Object({
  username: Type.String(),
  action: Type.String(),
  changed: Type.Boolean({ description: 'false when the user already was in that state' })
})

/** Who acted, for the audit table. */
export function consoleActor (request: FastifyRequest): string {
  return `console:${request.ip}`
}

/**
 * Writes down that the operator viewed `action` (a list, or one user): the user it names in
 * `target`, its other query settings (filters, page) in `detail`, never what it showed.
 * Called once the view has been read, before it is sent: a view that cannot be audited fails.
 */
export async function auditView (db: Kysely<Database>, request: FastifyRequest, action: string, target: string | null = null): Promise<void> {
  // only the settings the route declares (and so validated): anything else a client adds to the URL is not the operator's view
  const declared = new Set(Object.keys((request.routeOptions.schema?.querystring as { properties?: Record<string, unknown> } | undefined)?.properties ?? {}))
  const query = Object.entries((request.query ?? {}) as Record<string, unknown>)
    .filter(([name, value]) => declared.has(name) && name !== 'user' && value !== undefined)
    .map(([name, value]) => `${name}=${String(value)}`).join(' ')
  await recordAudit(db, { actor: consoleActor(request), action, target, detail: query === '' ? null : query })
}

/** The id of a user named in a filter, undefined without a filter; 404 for an unknown name. */
export async function filterUserId (db: Kysely<Database>, name: string | undefined): Promise<number | undefined> {
  if (name === undefined) return undefined
  return (await requireUser(db, name)).id
}

export { Username }
