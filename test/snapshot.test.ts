import { sql } from 'kysely'
import t from 'tap'
import { befriend, build, call, rowCounts, snapshot, user } from './helper.js'

// snapshot() is what "a refused request writes nothing" rests on (the fuzz, the authorization
// matrix, every refusal test): it must see a changed value, not only a changed row count.

t.test('a changed value in a row is seen though no count changes', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'alice key' } })
  await call(app, bob.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 's', recipient_blob: 'r' } })
  const counts = await rowCounts(app)
  t.same(await snapshot(app), await snapshot(app), 'the same contents give the same digests')

  const changes: Array<[string, () => Promise<unknown>]> = [
    ['users', async () => await app.db.updateTable('users').set({ password_hash: 'another hash' }).where('username', '=', 'alice').execute()],
    ['public_keys', async () => await app.db.updateTable('public_keys').set({ public_key: 'mallory key' }).execute()],
    ['chat_requests', async () => await app.db.updateTable('chat_requests').set({ status: 'pending' }).execute()],
    ['messages', async () => await app.db.updateTable('messages').set({ delivered_at: Date.now() }).execute()]
  ]
  for (const [table, change] of changes) {
    const before = await snapshot(app)
    await change()
    const after = await snapshot(app)
    t.not(after[table], before[table], `a changed value in ${table} changes its digest`)
    t.same({ ...after, [table]: before[table] }, before, 'and no other table\'s')
    t.same(await rowCounts(app), counts, 'while every count stays the same')
  }
})

t.test('the tables are read from the schema, not from a list in the test', async t => {
  const app = await build(t)
  const tables = Object.keys(await snapshot(app))
  t.ok(tables.includes('users') && tables.includes('events') && tables.includes('import_map'), tables.join(', '))
  t.notOk(tables.some(name => name.startsWith('kysely_') || name.startsWith('sqlite_')), 'migration and internal tables left out')
  t.same(Object.keys(await rowCounts(app)), tables)
  // a table the helper has never heard of is still covered (a fresh app, as the list is read once per database)
  const other = await build(t)
  await sql`create table zz_new_feature (id integer primary key, note text)`.execute(other.db)
  const before = await snapshot(other)
  t.ok('zz_new_feature' in before)
  await sql`insert into zz_new_feature (id, note) values (1, 'x')`.execute(other.db)
  t.not((await snapshot(other)).zz_new_feature, before.zz_new_feature)
})
