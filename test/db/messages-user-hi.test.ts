import { sql, type Kysely } from 'kysely'
import t from 'tap'
import { eraseUser } from '../../db/users.js'
import type { Database } from '../../db/schema.js'
import { postgresUrl } from '../helper.js'
import { migratableDatabase, plan } from './migration-helper.js'

// Migration 0010: messages_user_hi is gone. The lookups of every message a user is part of
// (an erasure, the admin console) ask for the sender or the recipient, which the indexes a
// send needs anyway answer; an existing database keeps its messages; and it goes down again.

const BEFORE = '2026-11-30-0009-partial-event-indexes'
const AFTER = '2026-12-02-0010-messages-user-hi'

async function indexesOfMessages (db: Kysely<Database>): Promise<string[]> {
  const { rows } = postgresUrl === undefined
    ? await sql<{ name: string }>`select name from sqlite_master where type = 'index' and tbl_name = 'messages' and name not like 'sqlite_%'`.execute(db)
    : await sql<{ name: string }>`select indexname as name from pg_indexes where schemaname = current_schema() and tablename = 'messages' and indexname <> 'messages_pkey'`.execute(db)
  return rows.map(row => row.name).sort()
}

t.test('an existing database migrates: its messages stay, a user\'s messages are still found by index, and it goes down again', async t => {
  const { db, migrator } = await migratableDatabase(t)
  t.equal((await migrator.migrateTo(BEFORE)).error, undefined)
  await sql`insert into users (id, username, username_key, password_hash, created_at) values (1, 'alice', 'alice', 'x', 1), (2, 'bob', 'bob', 'x', 1), (3, 'carol', 'carol', 'x', 1)`.execute(db)
  await sql`insert into messages (id, sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, created_at) values
    (5, 1, 2, 1, 2, 's', 'r', 1), (6, 2, 1, 1, 2, 's', 'r', 1), (7, 3, 2, 2, 3, 's', 'r', 1), (8, 2, 2, 2, 2, 's', 'r', 1)`.execute(db)
  t.ok((await indexesOfMessages(db)).includes('messages_user_hi'), 'before: the index is there')

  t.equal((await migrator.migrateTo(AFTER)).error, undefined)
  t.same(await indexesOfMessages(db), ['messages_conversation', 'messages_created', 'messages_recipient', 'messages_sender_client_msg_id'])
  t.equal((await db.selectFrom('messages').select('id').execute()).length, 4, 'every message is still there')

  // a user's messages, either way, by the sender's and the recipient's indexes
  const either = 'select id from messages where sender_id = $1 or recipient_id = $2'
  const found = await plan(db, either, [2, 2])
  t.match(found, /messages_sender_client_msg_id/)
  t.match(found, /messages_recipient/)
  t.notMatch(found, postgresUrl === undefined ? /SCAN messages/ : /Seq Scan/, 'no reading of the whole table')
  for (const [user, ids] of [[1, [5, 6]], [2, [5, 6, 7, 8]], [3, [7]]] as const) {
    const rows = await db.selectFrom('messages').select('id').where(eb => eb.or([eb('sender_id', '=', user), eb('recipient_id', '=', user)])).orderBy('id').execute()
    t.same(rows.map(row => Number(row.id)), ids, `user ${user}: the same messages as by user_lo and user_hi`)
  }

  t.equal((await migrator.migrateTo(BEFORE)).error, undefined, 'and down again')
  t.ok((await indexesOfMessages(db)).includes('messages_user_hi'))
})

t.test('an erasure still deletes every message of the user, sent and received, and no one else\'s', async t => {
  const { db, migrator } = await migratableDatabase(t)
  t.equal((await migrator.migrateToLatest()).error, undefined)
  await sql`insert into users (id, username, username_key, password_hash, created_at) values (1, 'alice', 'alice', 'x', 1), (2, 'bob', 'bob', 'x', 1), (3, 'carol', 'carol', 'x', 1)`.execute(db)
  await sql`insert into messages (id, sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, created_at) values
    (5, 1, 2, 1, 2, 's', 'r', 1), (6, 2, 1, 1, 2, 's', 'r', 1), (7, 3, 2, 2, 3, 's', 'r', 1), (8, 2, 2, 2, 2, 's', 'r', 1), (9, 1, 3, 1, 3, 's', 'r', 1)`.execute(db)
  t.ok(await eraseUser(db, 2))
  t.same((await db.selectFrom('messages').select('id').orderBy('id').execute()).map(row => Number(row.id)), [9], 'only alice to carol is left')
})
