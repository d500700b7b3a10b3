import type { Generated, Insertable } from 'kysely'

// Times are epoch milliseconds (bigint columns, numbers in JS on both databases).

export interface UsersTable {
  id: Generated<number>
  username: string
  username_key: string
  password_hash: string
  created_at: number
  /** Bumped by a password change: tokens carrying an older `ver` stop working. */
  token_version: Generated<number>
  /** Set by an operator: the user cannot log in and its tokens stop working. */
  disabled_at: number | null
  /** The Signal identity key of the account (standard base64 of 33 bytes), null until set. */
  identity_key: string | null
}

/** One of an account's devices; device 1 is added with the account (a trigger, see its migration). */
export interface DevicesTable {
  /** The device's key: never reused, so a device registered again is a new row (its tokens, keys and stream go with the old one). */
  id: Generated<number>
  user_id: number
  /** 1 to 127, as clients number devices. */
  device_id: number
  /** 1 to 16380, chosen by the client's install; null until it registers. */
  registration_id: number | null
  /** Opaque (clients may encrypt it), at most 256 characters. */
  name: string | null
  created_at: number
  /** The start of the UTC day the device was last authenticated. */
  last_seen_at: number
  /** The seq of the device's latest event (bumped in the event's own transaction). */
  event_seq: Generated<number>
  /** The highest seq deleted by retention: a cursor below it has missed events. */
  event_floor: Generated<number>
}

export interface PublicKeysTable {
  user_id: number
  public_key: string
  updated_at: number
}

export type RequestStatus = 'pending' | 'accepted'

export interface ChatRequestsTable {
  id: Generated<number>
  requester_id: number
  requested_id: number
  user_lo: number
  user_hi: number
  status: RequestStatus
  created_at: number
  updated_at: number
}

export interface MessagesTable {
  id: Generated<number>
  sender_id: number
  recipient_id: number
  user_lo: number
  user_hi: number
  sender_blob: string
  recipient_blob: string
  created_at: number
  /** The sender's idempotency key: a retry with the same one stores nothing new. */
  client_msg_id: string | null
  /** When the recipient acknowledged it. */
  delivered_at: number | null
}

/** A message row as a send stores it: every column said (null for no client_msg_id). */
export type NewMessage = Required<Omit<Insertable<MessagesTable>, 'id' | 'delivered_at'>>

export interface RevokedTokensTable {
  jti: string
  user_id: number
  /** When the token would have expired anyway; the row can be purged after that. */
  expires_at: number
}

export interface BlocksTable {
  blocker_id: number
  blocked_id: number
  created_at: number
}

export interface AdminAuditTable {
  id: Generated<number>
  created_at: number
  /** 'cli:<os user>' or 'console:<ip>' */
  actor: string
  action: string
  /** usually a username; `erased:<random id>` once that user is erased (db/erasure.ts); null for actions on the whole server (import) */
  target: string | null
  /** a short human summary; never a password, token, key or blob */
  detail: string | null
}

export type ImportedKind = 'user' | 'message'

export interface ImportMapTable {
  kind: ImportedKind
  original_id: number
  new_id: number
}

export interface EventsTable {
  /** The device whose stream holds it (devices.id). */
  device_id: number
  seq: number
  type: string
  /** JSON of the event's fields (never a blob: message events point at message_id). */
  payload: string
  message_id: number | null
  /** An `envelope` event's envelope (deleted with it). */
  envelope_id: number | null
  created_at: number
}

/** One PUT /v1/messages: its id, and the client_msg_id that makes a retry store nothing new. */
export interface SendsTable {
  id: Generated<number>
  sender_id: number
  recipient_id: number
  client_msg_id: string | null
  created_at: number
}

/** A ciphertext for one device, kept until that device acknowledges it. */
export interface EnvelopesTable {
  id: Generated<number>
  send_id: number
  /** The destination device (devices.id). */
  device_id: number
  /** The sending device's number (1 to 127). */
  source_device: number
  /** Signal's envelope type, passed through (1 ciphertext, 3 prekey bundle). */
  type: number
  /** Standard base64, as sent. */
  content: string
  created_at: number
}

export type PrekeyKind = 'ec' | 'kyber'

/** A device's one-time prekeys: each handed out once, deleted by the claim that reads it. */
export interface OneTimePrekeysTable {
  /** devices.id (the surrogate), not the device_id clients see */
  device_key: number
  kind: PrekeyKind
  key_id: number
  public_key: string
  /** Kyber keys are signed by the identity key; EC one-time keys are not (null) */
  signature: string | null
}

/** A device's signed EC prekey (kind 'ec') and Kyber last-resort key (kind 'kyber'): one of each, reused. */
export interface SignedPrekeysTable {
  device_key: number
  kind: PrekeyKind
  key_id: number
  public_key: string
  signature: string
}

/** One-time key ids already handed out, so that an id uploaded again is never handed out twice. */
export interface ClaimedPrekeysTable {
  device_key: number
  kind: PrekeyKind
  key_id: number
}

export interface Database {
  users: UsersTable
  devices: DevicesTable
  public_keys: PublicKeysTable
  chat_requests: ChatRequestsTable
  messages: MessagesTable
  revoked_tokens: RevokedTokensTable
  blocks: BlocksTable
  events: EventsTable
  sends: SendsTable
  envelopes: EnvelopesTable
  admin_audit: AdminAuditTable
  import_map: ImportMapTable
  one_time_prekeys: OneTimePrekeysTable
  signed_prekeys: SignedPrekeysTable
  claimed_prekeys: ClaimedPrekeysTable
}
