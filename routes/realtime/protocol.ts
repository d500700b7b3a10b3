// The real-time protocol, for the OpenAPI document (which cannot list WebSocket routes) and
// the AsyncAPI one (asyncapi.ts): the lists of events and close codes are made from the code.
// docs/realtime.md says the same at more length.

import { CursorExpired, CursorUnknown } from '../../errors.js'
import { CLOSE_RESYNC, CLOSE_SESSION_ENDED } from './connection.js'
import { Event, frameType } from './events.js'

/** Where the AsyncAPI document is served. */
export const ASYNCAPI_PATH = '/docs/asyncapi.json'

/** Why the server closes a socket, by close code, and what the client does then. */
export const CLOSE_CODES: ReadonlyArray<{ code: number, meaning: string }> = [
  {
    code: CLOSE_SESSION_ENDED,
    meaning: 'the session ended (logout, password change, account deletion, disabled account, token expiry, device removed or registered again): ' +
      'log in again; the token is checked again at every ping'
  },
  { code: CLOSE_RESYNC, meaning: `resync: the cursor expired (${CursorExpired.prototype.code}) or is unknown (${CursorUnknown.prototype.code}); start again without \`since\`` },
  { code: 1001, meaning: 'the server is shutting down: reconnect' },
  { code: 1011, meaning: 'server error: reconnect' }
]

/** The close codes in one sentence. */
export function closeCodes (): string {
  return CLOSE_CODES.map(({ code, meaning }) => `${code} ${meaning}`).join('; ')
}

/** One Markdown line per event type, from its schema. */
export function eventList (): string {
  return Event.anyOf.map(schema => `- \`${frameType(schema)}\`: ${schema.description ?? ''}`).join('\n')
}

export const PROTOCOL = `
**Three ways to receive.** (1) Poll \`GET /get_messages\` per contact with \`since_id\` (the original API, unchanged).
(2) \`GET /sync\`: one cursor for everything that happens to you, across all conversations; with \`timeout\` (up to 30 s) it
long-polls, answering the moment an event is stored, or with no events at the timeout. (3) \`GET /ws\`: a WebSocket that
replays what you missed since a cursor, then pushes each event as it is stored.

**One stream per device.** Each device of an account (see \`/v1/devices\`; a login without \`device\` is device 1) has its own
stream, cursor and sockets; what happens to the account reaches every device's stream.

**Cursor.** Every event carries \`cursor\`, an opaque string (valid for its own device only); \`next\` is the cursor after the last event returned.
Events come oldest first, each exactly once after a given cursor; store the cursor of the last event you processed and
pass it as \`since\`. Omit \`since\` to start from the oldest event kept. A cursor older than what retention kept answers
410 \`${CursorExpired.prototype.code}\`, a cursor of another account or another server 410 \`${CursorUnknown.prototype.code}\`: resync from scratch.

**Events** (\`type\`, plus \`cursor\` and \`timestamp\`; each one's fields are in the 200 response's schema):

${eventList()}

**WebSocket \`GET /ws?since=<cursor>\`.** Authenticate with \`Sec-WebSocket-Protocol: bearer, <token>\` (the server answers
\`bearer\`), \`?token=<token>\`, or \`Authorization: Bearer <token>\`; a bad token is refused with its 401 before the upgrade, and a client past
RATE_LIMIT_CONNECTIONS_PER_USER or _PER_ADDRESS (sockets and waiting long-polls held at once) with a 429 and \`retry-after\`.
The server sends JSON text frames: the events after \`since\`, then \`{"type":"ready","cursor":...}\` once the replay is
complete, then each new event as it is stored. Every socket of a user (phone, laptop) gets every event. What a client sends
is ignored. The server pings every \`WS_PING_INTERVAL\` and drops a peer that did not answer the previous ping; a client too
slow to read is dropped too. Before closing on purpose it sends \`{"type":"error","code","message"}\`; close codes:
${closeCodes()}.
On any close, reconnect with the cursor of the last event you processed: nothing is missed and nothing comes twice.
The same as an AsyncAPI 3.0 document, with the schema of every frame: \`GET ${ASYNCAPI_PATH}\`.
`.trim()
