import { Type, type TSchema } from '@sinclair/typebox'
import { usernameRule } from '../db/users.js'
import { UsernameTaken } from '../errors.js'

// Building blocks shared by the route schemas.

export const Username = Type.String({
  ...usernameRule,
  description: '3 to 32 characters of a-z 0-9 _ . - (compared case-insensitively)'
})

export const NewPassword = Type.String({ minLength: 8, maxLength: 1024, description: '8 to 1024 characters' })
// Logging in accepts any length an older server may have allowed; only the upper bound stays.
export const Password = Type.String({ minLength: 1, maxLength: 1024 })

/**
 * Pattern for opaque text the server stores (keys, blobs): anything but NUL, which
 * PostgreSQL text cannot hold (a 500 there, found by the fuzz suite). Base64 never has it.
 */
export const NO_NUL = '^[^\\u0000]*$'

/** A public key as upload_key takes it (the import checks the original's keys against it too). */
export function publicKeySchema (maxLength: number) {
  return Type.String({ minLength: 1, maxLength, pattern: NO_NUL, description: 'opaque to the server (any text but NUL)' })
}

/** A message blob as send_message takes it (the import checks the original's blobs against it too). */
export function blobSchema (maxLength: number) {
  return Type.String({ minLength: 1, maxLength, pattern: NO_NUL, description: 'ciphertext, opaque to the server (any text but NUL)' })
}

/** A device of an account, as Signal numbers them (1 is the account's first, created with it). */
export const DeviceId = Type.Integer({ minimum: 1, maximum: 127, description: 'a device number, 1 to 127' })
/** Chosen by a client's install (Signal's registration id); a new one means the app was reinstalled. */
export const RegistrationId = Type.Integer({ minimum: 1, maximum: 16380, description: 'the install\'s registration id, 1 to 16380' })
export const DeviceName = Type.String({ maxLength: 256, pattern: NO_NUL, description: 'opaque to the server (clients may encrypt it), at most 256 characters' })

/** The sender's idempotency key, on send_message and PUT /v1/messages. */
export const ClientMsgId = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9_.:-]+$',
  description: 'your id for this message (e.g. a UUID): a retry with the same id returns the message already stored instead of storing it again'
})

export const Timestamp = Type.String({ description: 'ISO 8601 UTC', examples: ['2026-11-27T10:00:00.000Z'] })

export const ErrorReply = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String(),
  message: Type.String(),
  code: Type.String({ description: `stable, machine-readable, e.g. ${UsernameTaken.prototype.code}; the API description lists every code` })
}, { description: 'Error' })

export const MessageReply = Type.Object({ message: Type.String() })

/** Error responses for the given statuses, so that each route documents every status it can send. */
export function errorReplies<const S extends readonly number[]> (...statuses: S): { [K in S[number]]: typeof ErrorReply } {
  return Object.fromEntries(statuses.map(status => [status, ErrorReply])) as { [K in S[number]]: typeof ErrorReply }
}

/** Marks a route as open to anyone (no token) in the OpenAPI document: `security: []` says so explicitly. */
export const noToken: Array<Record<string, string[]>> = []

/** Marks a route as needing `Authorization: Bearer <token>` in the OpenAPI document. */
export const bearer = [{ bearerAuth: [] }]

/** Marks a route as needing `Authorization: Bearer <ADMIN_TOKEN>` in the OpenAPI document. */
export const adminBearer = [{ adminToken: [] }]

export type { TSchema }
