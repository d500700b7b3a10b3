import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox'
import type { EventType } from '../../db/events.js'
import { Timestamp } from '../schemas.js'

// Every event a client can receive, from GET /sync and GET /ws alike: one schema per
// type, each with the cursor that follows it. The WebSocket adds two control frames.

export const Cursor = Type.String({
  minLength: 1,
  maxLength: 40,
  pattern: '^[0-9]{1,15}-[0-9]{1,15}$',
  description: 'opaque position in your event stream: pass it back as `since` to get what came after'
})

function event<T extends string, P extends TProperties> (type: T, description: string, properties: P): TObject<{ type: ReturnType<typeof Type.Literal<T>>, cursor: typeof Cursor, timestamp: typeof Timestamp } & P> {
  return Type.Object({ type: Type.Literal(type), cursor: Cursor, timestamp: Timestamp, ...properties }, { title: `${type} event`, description, additionalProperties: false })
}

const Username = Type.String({ description: 'the other user' })

export const MessageEvent = event('message', 'A message to you or from you (sent from any of your devices). `encrypted_blob` is your own copy.', {
  message: Type.Object({
    id: Type.Integer(),
    sender_id: Type.Integer(),
    recipient_id: Type.Integer(),
    sender_username: Type.String(),
    recipient_username: Type.String(),
    timestamp: Timestamp,
    encrypted_blob: Type.String({ description: 'your own copy: sender_blob if you sent it, recipient_blob otherwise' }),
    client_msg_id: Type.Union([Type.String(), Type.Null()], { description: 'the client_msg_id you sent it with (null in the recipient\'s copy)' })
  }, { additionalProperties: false })
})
export const ChatRequestEvent = event('chat_request', 'Someone asked you for a chat.', { requester_username: Username })
export const ChatAcceptedEvent = event('chat_accepted', 'You and `username` are now contacts (sent to both sides).', { username: Username })
export const ChatDeclinedEvent = event('chat_declined', '`username` declined your chat request.', { username: Username })
export const RequestCancelledEvent = event('request_cancelled', '`username` withdrew their chat request to you.', { username: Username })
export const ContactRemovedEvent = event('contact_removed', '`username` is no longer your contact.', { username: Username })
export const KeyChangedEvent = event('key_changed', 'Your contact `username` uploaded a different public key, or changed their identity key: the safety number changed.', { username: Username })
const AckedDevice = Type.Optional(Type.Integer({ minimum: 1, maximum: 127, description: 'present for envelopes (PUT /v1/messages): the device of `username` concerned; `message_ids` are then the ids of those sends' }))
export const DeliveredEvent = event('delivered', '`username` acknowledged these messages you sent them (with POST /ack_messages).', {
  username: Username,
  message_ids: Type.Array(Type.Integer()),
  device: AckedDevice
})
export const ExpiredUndeliveredEvent = event('expired_undelivered', 'These messages you sent `username` were deleted by retention before being acknowledged.', {
  username: Username,
  message_ids: Type.Array(Type.Integer()),
  device: AckedDevice
})
export const EnvelopeEvent = event('envelope', 'A ciphertext for this device (PUT /v1/messages), from a contact or from another device of yours. ' +
  'Acknowledge it with POST /ack_messages {envelope_ids}: it is then deleted from the server.', {
  envelope: Type.Object({
    id: Type.Integer({ description: 'the send\'s id: acknowledge by it' }),
    sourceUsername: Type.String(),
    sourceDevice: Type.Integer({ minimum: 1, maximum: 127 }),
    type: Type.Integer({ description: 'Signal\'s envelope type, as the sender gave it: 1 ciphertext (a Signal message), 3 prekey bundle (a PreKeySignalMessage)' }),
    content: Type.String({ description: 'standard base64, as the sender gave it' }),
    timestamp: Timestamp
  }, { additionalProperties: false })
})
export const ContactDeletedEvent = event('contact_deleted', 'Someone you had a contact, a chat request or a block with deleted their account (or an operator did). ' +
  'It does not say who: the server keeps nothing that names an erased user, and the earlier events that named them are gone from your stream. ' +
  'Refresh GET /get_contacts, /get_chat_requests and /get_blocked; your messages with them are gone from the server.', {})

export const DevicesChangedEvent = event('devices_changed', 'A device of `username` (a contact, or your own account) was added, removed or registered again: ' +
  'fetch their prekey bundles (GET /v1/keys/{username}/*) before you next encrypt for them.', { username: Type.String({ description: 'your contact, or yourself' }) })

export const PrekeysLowEvent = event('prekeys_low', 'To this device only: a contact claimed one of its one-time prekeys and fewer than 10 of a kind are left ' +
  '(EC `count`, Kyber `pqCount`, unclaimed): upload more (PUT /v1/keys).', {
  count: Type.Integer({ description: 'unclaimed EC one-time prekeys of this device' }),
  pqCount: Type.Integer({ description: 'unclaimed Kyber one-time prekeys of this device' })
})

export const Event = Type.Union([
  MessageEvent, ChatRequestEvent, ChatAcceptedEvent, ChatDeclinedEvent, RequestCancelledEvent, ContactRemovedEvent,
  KeyChangedEvent, DeliveredEvent, ExpiredUndeliveredEvent, ContactDeletedEvent, DevicesChangedEvent, PrekeysLowEvent, EnvelopeEvent
], { title: 'Event' })
export type WireEvent = Static<typeof Event>

/** WebSocket only: the replay from `since` is complete; live events follow. */
export const ReadyFrame = Type.Object({ type: Type.Literal('ready'), cursor: Cursor }, {
  title: 'ready frame',
  description: 'WebSocket only: the replay of what came after `since` is complete; each new event follows as it is stored.',
  additionalProperties: false
})
/** WebSocket only: sent just before the server closes the socket for this reason. */
export const ErrorFrame = Type.Object({
  type: Type.Literal('error'),
  code: Type.String({ description: 'a code of the error catalogue (the OpenAPI document lists them)' }),
  message: Type.String()
}, { title: 'error frame', description: 'WebSocket only: sent just before the server closes the socket, saying why (the close code says what to do).', additionalProperties: false })
export const ServerFrame = Type.Union([Event, ReadyFrame, ErrorFrame], { title: 'WebSocket frame' })
export type WireFrame = Static<typeof ServerFrame>

/** Every frame the server sends, one schema per `type`: the events, then the WebSocket's own two. */
export const FRAMES = [...Event.anyOf, ReadyFrame, ErrorFrame]

/** The `type` a frame schema stands for. */
export function frameType (schema: (typeof FRAMES)[number]): WireFrame['type'] {
  return schema.properties.type.const
}

// Every event type the database stores has its wire schema here, and no schema describes a
// type nothing stores: adding one without the other fails the type check.
type Same<A, B> = [A] extends [B] ? [B] extends [A] ? true : false : false
type Holds<T extends true> = T
export type EveryStoredEventHasASchema = Holds<Same<EventType, WireEvent['type']>>
