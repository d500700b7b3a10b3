import createError from '@fastify/error'

// One coded error per way a request can fail. `code` is stable for clients to branch on;
// `message` is for people, as the original clients show it.

export const MissingToken = createError('MISSING_TOKEN', "Missing Authorization header; expected 'Bearer <token>'.", 401)
export const MalformedAuthorization = createError('MALFORMED_AUTHORIZATION', "Malformed Authorization header; expected 'Bearer <token>'.", 401)
export const InvalidToken = createError('INVALID_TOKEN', 'Invalid token.', 401)
export const TokenExpired = createError('TOKEN_EXPIRED', 'Token has expired; log in again.', 401)
export const AccountGone = createError('ACCOUNT_GONE', 'The account of this token no longer exists.', 401)
export const TokenRevoked = createError('TOKEN_REVOKED', 'Token has been revoked; log in again.', 401)
export const AccountDisabled = createError('ACCOUNT_DISABLED', 'This account has been disabled by the operator.', 401)
export const InvalidCredentials = createError('INVALID_CREDENTIALS', 'Invalid username or password.', 401)

export const UsernameTaken = createError('USERNAME_TAKEN', 'Username already exists.', 409)
export const UserNotFound = createError<[string]>('USER_NOT_FOUND', "User '%s' not found.", 404)
export const KeyNotFound = createError<[string]>('KEY_NOT_FOUND', "User '%s' has not uploaded a public key.", 404)

export const SelfRequest = createError('SELF_REQUEST', 'You cannot send a chat request to yourself.', 400)
export const AlreadyRequested = createError<[string]>('ALREADY_REQUESTED', "You already sent a chat request to '%s'.", 409)
export const AlreadyContacts = createError<[string]>('ALREADY_CONTACTS', "You and '%s' are already contacts.", 409)
export const NoPendingRequest = createError<[string]>('NO_PENDING_REQUEST', "No pending chat request from '%s'.", 404)
export const NotAContact = createError<[string]>('NOT_A_CONTACT', "You can only message accepted contacts; '%s' is not one.", 403)
export const WrongPassword = createError('WRONG_PASSWORD', 'Password is incorrect.', 403)
export const SelfBlock = createError('SELF_BLOCK', 'You cannot block yourself.', 400)
export const NotBlocked = createError<[string]>('NOT_BLOCKED', "You have not blocked '%s'.", 404)
export const YouBlocked = createError<[string]>('USER_BLOCKED', "You have blocked '%s'; unblock them first.", 409)
export const NotYourContact = createError<[string]>('NOT_YOUR_CONTACT', "'%s' is not one of your contacts.", 404)
export const AccountRateLimited = createError<[string, number]>('RATE_LIMITED', 'Too many %s for this account; retry in %s seconds.', 429)

export const AdminUnauthorized = createError('ADMIN_UNAUTHORIZED', "Missing or wrong admin token; send 'Authorization: Bearer <ADMIN_TOKEN>'.", 401)
export const InvalidTime = createError<[string]>('INVALID_TIME', "'%s' must be a date (2026-11-27) or an ISO 8601 time (2026-11-27T10:00:00Z).", 400)

export const ClientMsgIdReused = createError('CLIENT_MSG_ID_REUSED', 'This client_msg_id was already used for a message to someone else.', 409)
export const MessageNotFound = createError<[number]>('MESSAGE_NOT_FOUND', 'Message %d is not a message you received.', 404)
export const CursorExpired = createError('CURSOR_EXPIRED', 'This cursor is older than the events the server keeps; resync from scratch (omit since).', 410)
export const UpgradeRequired = createError('UPGRADE_REQUIRED', 'GET /ws is a WebSocket: open it with an Upgrade: websocket request, or use GET /sync over plain HTTP.', 426)
export const CursorUnknown = createError('CURSOR_UNKNOWN', 'This cursor was not issued for this account by this server; resync from scratch (omit since).', 410)
