import createError, { type FastifyError, type FastifyErrorConstructor } from '@fastify/error'

// The catalogue: every `code` the API answers with, in an HTTP error body or a WebSocket
// error frame, one coded error per way a request can fail. `code` is stable for clients to
// branch on; `message` is for people, as the original clients show it.

export interface CatalogueEntry { code: string, statusCode: number, message: string }

const entries = new Map<string, CatalogueEntry>()
const classes: Array<new (...args: never) => FastifyError> = []

/**
 * createError that also enters the code in the catalogue, so that none is left out of it,
 * and puts the code on the prototype: `CursorExpired.prototype.code` names it without an error.
 */
function coded<A extends unknown[] = []> (code: string, message: string, statusCode: number): FastifyErrorConstructor<{ code: string, statusCode: number }, A> {
  if (!entries.has(code)) entries.set(code, { code, statusCode, message })
  const Coded = createError<string, number, A>(code, message, statusCode)
  Object.defineProperty(Coded.prototype, 'code', { value: code, writable: true, configurable: true })
  classes.push(Coded)
  return Coded
}

export const MissingToken = coded('MISSING_TOKEN', "Missing Authorization header; expected 'Bearer <token>'.", 401)
export const MalformedAuthorization = coded('MALFORMED_AUTHORIZATION', "Malformed Authorization header; expected 'Bearer <token>'.", 401)
export const InvalidToken = coded('INVALID_TOKEN', 'Invalid token.', 401)
export const TokenExpired = coded('TOKEN_EXPIRED', 'Token has expired; log in again.', 401)
export const AccountGone = coded('ACCOUNT_GONE', 'The account of this token no longer exists.', 401)
export const TokenRevoked = coded('TOKEN_REVOKED', 'Token has been revoked; log in again.', 401)
export const DeviceRemoved = coded('DEVICE_REMOVED', 'The device of this token was removed or registered again; log in again.', 401)
export const AccountDisabled = coded('ACCOUNT_DISABLED', 'This account has been disabled by the operator.', 401)
export const InvalidCredentials = coded('INVALID_CREDENTIALS', 'Invalid username or password.', 401)
// WebSocket only (its error frame, then close 4401): a hub signal ended the socket's session
export const SessionEnded = coded('SESSION_ENDED', 'This session ended (logout, password change or account deletion).', 401)

export const TooManyDevices = coded<[number]>('TOO_MANY_DEVICES', 'This account has the most devices it may have (%d); remove one first (DELETE /v1/devices/{deviceId}).', 409)
export const DeviceNotFound = coded<[number]>('DEVICE_NOT_FOUND', 'You have no device %d.', 404)
export const PrimaryDevice = coded('PRIMARY_DEVICE', 'Device 1 is the account itself and cannot be removed; delete the account instead.', 400)
export const MismatchedDevices = coded('MISMATCHED_DEVICES', 'The messages do not cover exactly the recipient\'s current devices: see missingDevices and extraDevices, fetch their bundles, and send again.', 409)
export const StaleDevices = coded('STALE_DEVICES', 'These devices were registered again since you fetched their bundles (staleDevices): fetch them again and send again.', 410)
export const UsernameTaken = coded('USERNAME_TAKEN', 'Username already exists.', 409)
export const UserNotFound = coded<[string]>('USER_NOT_FOUND', "User '%s' not found.", 404)
export const KeyNotFound = coded<[string]>('KEY_NOT_FOUND', "User '%s' has not uploaded a public key.", 404)

export const SelfRequest = coded('SELF_REQUEST', 'You cannot send a chat request to yourself.', 400)
export const AlreadyRequested = coded<[string]>('ALREADY_REQUESTED', "You already sent a chat request to '%s'.", 409)
export const AlreadyContacts = coded<[string]>('ALREADY_CONTACTS', "You and '%s' are already contacts.", 409)
export const NoPendingRequest = coded<[string]>('NO_PENDING_REQUEST', "No pending chat request from '%s'.", 404)
export const NoSentRequest = coded<[string]>('NO_SENT_REQUEST', "You have no pending chat request to '%s'.", 404)
export const NotAContact = coded<[string]>('NOT_A_CONTACT', "You can only message accepted contacts; '%s' is not one.", 403)
export const WrongPassword = coded('WRONG_PASSWORD', 'Password is incorrect.', 403)
export const SelfBlock = coded('SELF_BLOCK', 'You cannot block yourself.', 400)
export const NotBlocked = coded<[string]>('NOT_BLOCKED', "You have not blocked '%s'.", 404)
export const BlockedByYou = coded<[string]>('USER_BLOCKED', "You have blocked '%s'; unblock them first.", 409)
export const InvalidSignature = coded<[string]>('INVALID_SIGNATURE', "The signature of %s does not verify against the account's identity key; nothing was stored.", 422)
export const NoIdentityKey = coded('NO_IDENTITY_KEY', 'Set the identity key (PUT /v1/keys/identity) before uploading signed keys.', 409)
export const NoPrekeys = coded<[string, string]>('NO_PREKEYS', "No prekey bundle of '%s' (device %s): no such device, or it has no registration id, signed prekey or last-resort key.", 404)
export const NotYourContact = coded<[string]>('NOT_YOUR_CONTACT', "'%s' is not one of your contacts.", 404)
export const AccountRateLimited = coded<[string, number]>('RATE_LIMITED', 'Too many %s for this account; retry in %s seconds.', 429)
// the per-IP limits of @fastify/rate-limit: the same code, the plugin's own wording
export const RateLimited = coded<[string]>('RATE_LIMITED', 'Rate limit exceeded, retry in %s', 429)
// WebSockets and long-polls held at once (RATE_LIMIT_CONNECTIONS_PER_USER, _PER_ADDRESS): the same code
export const TooManyConnections = coded<[string, number]>('RATE_LIMITED', 'Too many open connections (WebSockets and waiting long-polls) for %s: at most %s at once; close one and retry.', 429)

export const AdminUnauthorized = coded('ADMIN_UNAUTHORIZED', "Missing or wrong admin token; send 'Authorization: Bearer <ADMIN_TOKEN>'.", 401)
export const InvalidTime = coded<[string]>('INVALID_TIME', "'%s' must be a date (2026-11-27) or an ISO 8601 time (2026-11-27T10:00:00Z).", 400)

export const ClientMsgIdReused = coded('CLIENT_MSG_ID_REUSED', 'This client_msg_id was already used for a message to someone else.', 409)
export const MessageNotFound = coded<[number]>('MESSAGE_NOT_FOUND', 'Message %d is not a message you received.', 404)
export const CursorExpired = coded('CURSOR_EXPIRED', 'This cursor is older than the events the server keeps; resync from scratch (omit since).', 410)
export const UpgradeRequired = coded('UPGRADE_REQUIRED', 'GET /ws is a WebSocket: open it with an Upgrade: websocket request, or use GET /sync over plain HTTP.', 426)
export const CursorUnknown = coded('CURSOR_UNKNOWN', 'This cursor was not issued for this account by this server; resync from scratch (omit since).', 410)

// Requests refused before a route runs. Fastify's own errors among them are renamed by the
// error handler: their FST_ERR_* codes are Fastify's internals, not part of our API.
export const ValidationFailed = coded<[string]>('VALIDATION_ERROR', '%s', 400)
export const MalformedJson = coded('MALFORMED_JSON', "Body is not valid JSON but content-type is set to 'application/json'.", 400)
export const PayloadTooLarge = coded('PAYLOAD_TOO_LARGE', 'Request body is too large.', 413)
export const UnsupportedMediaType = coded('UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type; send the body as application/json.', 415)
export const MalformedUrl = coded<[string]>('MALFORMED_URL', "'%s' is not a valid url component.", 400)
export const UrlTooLong = coded<[string]>('URL_TOO_LONG', "'%s' is exceeding the max param length.", 414)
export const RouteNotFound = coded<[string, string]>('ROUTE_NOT_FOUND', 'Route %s %s not found.', 404)
// any other client error (a wrong Content-Length, a plugin's): its status and message, this code
export const BadRequest = coded<[string]>('BAD_REQUEST', '%s', 400)

export const DatabaseUnavailable = coded('DATABASE_UNAVAILABLE', 'Database not reachable.', 503)
// a fault of the server: its details are logged, never sent
export const Internal = coded('INTERNAL', 'Internal server error.', 500)

/** Every code of the catalogue, once, with the status and message of its first error. */
export const catalogue: readonly CatalogueEntry[] = [...entries.values()]

/** An error of the catalogue (not merely one with a code of the same name). */
export function isCatalogued (error: unknown): error is FastifyError & { statusCode: number } {
  return classes.some(Coded => error instanceof Coded)
}

/** The error with fields of its own beside the usual four, e.g. `missingDevices` (the error handler sends them). */
export function withDetails<E extends FastifyError> (error: E, details: Record<string, unknown>): E {
  return Object.assign(error, { details })
}
