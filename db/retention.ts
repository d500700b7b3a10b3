import type { Kysely } from 'kysely'
import { purgeEnvelopes } from './envelopes.js'
import { appendEvents, purgeEvents } from './events.js'
import type { Database } from './schema.js'

// MESSAGE_RETENTION_DAYS: messages, envelopes and events older than the cutoff are deleted.
// A message or envelope that goes without ever having been acknowledged tells its sender so.

export interface PurgeOutcome {
  messages: number
  envelopes: number
  events: number
  /** Senders that were sent an `expired_undelivered` event. */
  notify: number[]
}

/** Deletes what was created before `cutoff`, in batches so that no transaction grows large. */
export async function purgeBefore (db: Kysely<Database>, cutoff: number, batchSize = 500, now = Date.now()): Promise<PurgeOutcome> {
  const notify = new Set<number>()
  let messages = 0
  for (;;) {
    const batch = await db.transaction().execute(async trx => {
      // deleting first and reporting what this delete removed: of two instances sweeping
      // at once, each message is deleted, and reported, by exactly one
      const rows = await trx.deleteFrom('messages')
        .where('id', 'in', eb => eb.selectFrom('messages').select('id').where('created_at', '<', cutoff).orderBy('id').limit(batchSize))
        .returning(['id', 'sender_id', 'recipient_id', 'delivered_at'])
        .execute()
      const unacked = rows.filter(row => row.delivered_at === null)
      if (unacked.length === 0) return rows.length
      const names = new Map((await trx.selectFrom('users').select(['id', 'username'])
        .where('id', 'in', [...new Set(unacked.map(row => row.recipient_id))])
        .execute()).map(row => [row.id, row.username]))
      const groups = new Map<string, { senderId: number, username: string, ids: number[] }>()
      for (const row of unacked) {
        const username = names.get(row.recipient_id)
        if (username === undefined) continue // the recipient is gone: nobody to name
        const key = `${row.sender_id}:${row.recipient_id}`
        const group = groups.get(key) ?? { senderId: row.sender_id, username, ids: [] }
        group.ids.push(row.id)
        groups.set(key, group)
      }
      await appendEvents(trx, [...groups.values()].map(group => ({
        userId: group.senderId, type: 'expired_undelivered' as const, payload: { username: group.username, message_ids: group.ids.sort((a, b) => a - b) }
      })), now)
      for (const group of groups.values()) notify.add(group.senderId)
      return rows.length
    })
    messages += batch
    if (batch < batchSize) break
  }
  const envelopes = await purgeEnvelopes(db, cutoff, batchSize, now)
  for (const id of envelopes.notify) notify.add(id)
  const events = await purgeEvents(db, cutoff)
  return { messages, envelopes: envelopes.envelopes, events, notify: [...notify] }
}
