import type { Kysely } from 'kysely'
import { readEvents, streamBounds, type StoredEvent } from '../../db/events.js'
import type { Database } from '../../db/schema.js'
import { iso } from '../../db/time.js'
import type { User } from '../../db/users.js'
import { AccountGone, CursorExpired, CursorUnknown } from '../../errors.js'
import type { WireEvent } from './events.js'

// Reading a device's event stream from a cursor: shared by GET /sync and GET /ws.
// A cursor is `<device key>-<seq>` (device 1 of an account older than devices has the
// user's id as its key, so the cursors of that time still work); clients treat it as opaque.

/** Whose stream: the account, and its device that reads. */
export interface Reader {
  user: User
  /** devices.id */
  deviceKey: number
}

export function formatCursor (deviceKey: number, seq: number): string {
  return `${deviceKey}-${seq}`
}

/**
 * The seq to read after: the cursor's, or the oldest kept when there is none. A cursor of
 * another account or device (a device registered again too) or ahead of the stream is
 * unknown; one below what retention deleted is expired. Either way the client must resync
 * from scratch.
 */
export async function startingSeq (db: Kysely<Database>, deviceKey: number, since: string | undefined): Promise<number> {
  const bounds = await streamBounds(db, deviceKey)
  if (bounds === undefined) throw new AccountGone()
  if (since === undefined || since === '') return bounds.floor
  const seq = claimedSeq(deviceKey, since)
  if (seq === undefined || seq > bounds.seq) throw new CursorUnknown()
  if (seq < bounds.floor) throw new CursorExpired()
  return seq
}

/**
 * The page after `since` (see startingSeq) for an answer given at once. When the cursor
 * names a seq of this device, the page is read together with the stream's bounds (on
 * PostgreSQL both go out in one write: one round trip instead of two) and dropped if the
 * bounds reject the cursor.
 */
export async function pageSince (db: Kysely<Database>, reader: Reader, since: string | undefined, limit: number): Promise<Page> {
  const claimed = claimedSeq(reader.deviceKey, since)
  if (claimed === undefined) return await readPage(db, reader, await startingSeq(db, reader.deviceKey, since), limit)
  const [, page] = await Promise.all([startingSeq(db, reader.deviceKey, since), readPage(db, reader, claimed, limit)])
  return page
}

/** The seq a cursor names when it is one of this device's, unchecked against the stream. */
function claimedSeq (deviceKey: number, since: string | undefined): number | undefined {
  if (since === undefined || since === '') return undefined
  const [owner, seq] = since.split('-').map(Number)
  return owner === deviceKey && seq !== undefined && Number.isSafeInteger(seq) ? seq : undefined
}

export interface Page {
  events: WireEvent[]
  /** The seq of the last event read (skipped ones included), or the starting one. */
  lastSeq: number
  hasMore: boolean
}

export async function readPage (db: Kysely<Database>, reader: Reader, afterSeq: number, limit: number): Promise<Page> {
  const { events, hasMore } = await readEvents(db, reader.user.id, reader.deviceKey, afterSeq, limit)
  const wire: WireEvent[] = []
  for (const event of events) {
    const shown = toWire(reader, event)
    if (shown !== undefined) wire.push(shown)
  }
  return { events: wire, lastSeq: events.at(-1)?.seq ?? afterSeq, hasMore }
}

/** The event as the client sees it; undefined for a message event whose message is gone (deleted account), or an envelope already deleted. */
export function toWire ({ user, deviceKey }: Reader, event: StoredEvent): WireEvent | undefined {
  const head = { cursor: formatCursor(deviceKey, event.seq), timestamp: iso(event.created_at) }
  switch (event.type) {
    case 'message': {
      const m = event.message
      if (m === null) return undefined
      return {
        type: 'message',
        ...head,
        message: {
          id: m.id,
          sender_id: m.sender_id,
          recipient_id: m.recipient_id,
          sender_username: event.payload.sender_username,
          recipient_username: event.payload.recipient_username,
          timestamp: iso(m.created_at),
          encrypted_blob: m.encrypted_blob,
          client_msg_id: m.sender_id === user.id ? m.client_msg_id : null
        }
      }
    }
    case 'chat_request': return { type: event.type, ...head, requester_username: event.payload.requester_username }
    case 'chat_accepted':
    case 'chat_declined':
    case 'request_cancelled':
    case 'contact_removed':
    case 'key_changed':
    case 'devices_changed': return { type: event.type, ...head, username: event.payload.username }
    case 'delivered':
    case 'expired_undelivered': {
      const { username, message_ids: ids, device } = event.payload
      return { type: event.type, ...head, username, message_ids: ids, ...device === undefined ? {} : { device } }
    }
    case 'envelope': {
      const e = event.envelope
      if (e === null) return undefined
      return {
        type: 'envelope',
        ...head,
        envelope: { id: e.id, sourceUsername: event.payload.sourceUsername, sourceDevice: event.payload.sourceDevice, type: e.type, content: e.content, timestamp: iso(e.created_at) }
      }
    }
    case 'contact_deleted': return { type: event.type, ...head }
    case 'prekeys_low': return { type: event.type, ...head, count: event.payload.count, pqCount: event.payload.pqCount }
  }
}
