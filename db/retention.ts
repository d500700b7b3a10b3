import type { Kysely } from 'kysely'
import { appendEvents, purgeEvents } from './events.js'
import type { Database } from './schema.js'

// MESSAGE_RETENTION_DAYS: messages and events older than the cutoff are deleted. A
// message that goes without ever having been acknowledged tells its sender so.

export interface PurgeOutcome {
  messages: number
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
      const rows = await trx.selectFrom('messages')
        .innerJoin('users', 'users.id', 'messages.recipient_id')
        .select(['messages.id', 'messages.sender_id', 'messages.delivered_at', 'users.username as recipient_username'])
        .where('messages.created_at', '<', cutoff)
        .orderBy('messages.id')
        .limit(batchSize)
        .execute()
      if (rows.length === 0) return 0
      const undelivered = new Map<string, { senderId: number, username: string, ids: number[] }>()
      for (const row of rows) {
        if (row.delivered_at !== null) continue
        const key = `${row.sender_id}:${row.recipient_username}`
        const group = undelivered.get(key) ?? { senderId: row.sender_id, username: row.recipient_username, ids: [] }
        group.ids.push(row.id)
        undelivered.set(key, group)
      }
      await appendEvents(trx, [...undelivered.values()].map(group => ({
        userId: group.senderId, type: 'expired_undelivered' as const, payload: { username: group.username, message_ids: group.ids }
      })), now)
      for (const group of undelivered.values()) notify.add(group.senderId)
      await trx.deleteFrom('messages').where('id', 'in', rows.map(row => row.id)).execute()
      return rows.length
    })
    messages += batch
    if (batch < batchSize) break
  }
  const events = await purgeEvents(db, cutoff)
  return { messages, events, notify: [...notify] }
}
