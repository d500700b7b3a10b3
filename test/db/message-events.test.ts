import t from 'tap'
import type { Kysely } from 'kysely'
import { appendEvents, messageEvents, storeMessageWithEvents } from '../../db/events.js'
import { storeMessage } from '../../db/messages.js'
import type { Database, NewMessage } from '../../db/schema.js'
import { createUser, type User } from '../../db/users.js'
import { build, postgresUrl } from '../helper.js'

// On PostgreSQL a send stores its message and both `message` events in one statement
// (storeMessageWithEvents), which restates in SQL what inserting the message and calling
// appendEvents do (SQLite's path). The same sends must leave the same `events` rows.

const T0 = 1_800_000_000_000

/** The same sends on a fresh database, each stored by `store`; the events rows left behind. */
async function sendAll (db: Kysely<Database>, store: (db: Kysely<Database>, row: NewMessage, sender: User, recipient: User) => Promise<void>): Promise<unknown[]> {
  const users: User[] = []
  for (const name of ['ann', 'ben', 'cid']) users.push(await createUser(db, name, 'x', T0) as User)
  const [ann, ben, cid] = users as [User, User, User]
  const sends: Array<[User, User]> = [[ann, ben], [ben, ann], [ann, cid], [cid, ben], [ann, ben]]
  for (const [i, [sender, recipient]] of sends.entries()) {
    const row: NewMessage = {
      sender_id: sender.id,
      recipient_id: recipient.id,
      user_lo: Math.min(sender.id, recipient.id),
      user_hi: Math.max(sender.id, recipient.id),
      sender_blob: `to ${recipient.username}`,
      recipient_blob: `from ${sender.username}`,
      client_msg_id: i % 2 === 0 ? `m${i}` : null,
      created_at: T0 + 1000 + i
    }
    await store(db, row, sender, recipient)
    // an event of another kind between sends: seqs must go on from wherever the stream is
    if (i === 1) await db.transaction().execute(async trx => { await appendEvents(trx, [{ userId: ann.id, type: 'key_changed', payload: { username: 'cid' } }], T0 + 1100) })
  }
  return await db.selectFrom('events').selectAll().orderBy('device_id').orderBy('seq').execute()
}

const postgresOnly = { skip: postgresUrl === undefined && 'PostgreSQL only: needs DATABASE_URL=postgres://...' }

t.test('one statement and appendEvents write the same events rows for the same sends', postgresOnly, async t => {
  // each on a fresh schema of its own: users and messages get the same ids on all three
  const oneStatement = await sendAll((await build(t)).db, async (db, row, sender, recipient) => {
    await storeMessageWithEvents(db, row, { sender_username: sender.username, recipient_username: recipient.username })
  })
  const appended = await sendAll((await build(t)).db, async (db, row, sender, recipient) => {
    const payload = { sender_username: sender.username, recipient_username: recipient.username }
    await db.transaction().execute(async trx => {
      const { id } = await trx.insertInto('messages').values(row).returning('id').executeTakeFirstOrThrow()
      await appendEvents(trx, messageEvents(row, id, payload), row.created_at)
    })
  })
  const sent = await sendAll((await build(t)).db, async (db, row, sender, recipient) => {
    const { sender_blob: senderBlob, recipient_blob: recipientBlob, client_msg_id: clientMsgId } = row
    await storeMessage(db, { sender, recipient, sender_blob: senderBlob, recipient_blob: recipientBlob, client_msg_id: clientMsgId ?? undefined }, row.created_at)
  })
  t.equal(appended.length, 11, 'two events a send, and the one between')
  t.same(oneStatement, appended, 'the same devices, types, payloads, seqs, message ids and times')
  t.same(sent, appended, 'and storeMessage, which takes the one statement on PostgreSQL')
  t.match(appended[0], { device_id: 1, seq: 1, type: 'message', payload: '{"sender_username":"ann","recipient_username":"ben"}', message_id: 1 })
})

// appendEvents inserts its rows in one statement, compiled once for each count up to 16
// (db/events.ts) and built beyond: every count numbers each device's events in order.
t.test('appendEvents numbers the events of many devices, in one statement of any size', async t => {
  const { db } = await build(t)
  const ann = await createUser(db, 'ann', 'x', T0) as User
  const ben = await createUser(db, 'ben', 'x', T0) as User
  // ann has 20 devices in all, ben 3
  for (let id = 2; id <= 20; id++) await db.insertInto('devices').values({ user_id: ann.id, device_id: id, registration_id: id, name: null, created_at: T0, last_seen_at: T0 }).execute()
  for (let id = 2; id <= 3; id++) await db.insertInto('devices').values({ user_id: ben.id, device_id: id, registration_id: id, name: null, created_at: T0, last_seen_at: T0 }).execute()
  const append = async (userIds: number[]): Promise<void> => {
    await db.transaction().execute(async trx => {
      await appendEvents(trx, userIds.map(userId => ({ userId, type: 'key_changed', payload: { username: 'cid' } })), T0 + 1)
    })
  }
  await append([ben.id]) // 3 rows
  await append([ann.id, ben.id]) // 23 rows: past the compiled counts
  await append([ann.id]) // 20 rows
  await append([ben.id, ann.id]) // 23 rows again
  const rows = await db.selectFrom('events').innerJoin('devices', 'devices.id', 'events.device_id')
    .select(['devices.user_id', 'devices.device_id', 'events.seq']).orderBy('devices.user_id').orderBy('devices.device_id').orderBy('events.seq').execute()
  t.equal(rows.length, 3 + 23 + 20 + 23)
  const seqs = (userId: number, deviceId: number): number[] => rows.filter(r => r.user_id === userId && r.device_id === deviceId).map(r => r.seq)
  for (let id = 1; id <= 20; id++) t.same(seqs(ann.id, id), [1, 2, 3], `ann's device ${id}: one event each time, numbered from 1`)
  for (let id = 1; id <= 3; id++) t.same(seqs(ben.id, id), [1, 2, 3], `ben's device ${id}`)
})
