import { sql } from 'kysely'
import t from 'tap'
import { MAX_GROUP, holdGroupCommits, inGroupTransaction } from '../../../db/perf/group-commit.js'
import { createUser } from '../../../db/users.js'
import { befriend, build, call, postgresUrl, user } from '../../helper.js'

// Concurrent writes share one transaction on SQLite (db/perf/group-commit.ts): each still
// stands or falls alone, and each caller hears back only once its write is committed.

t.test('a failing write in a group undoes only itself; the others commit', async t => {
  const app = await build(t)
  const { db } = app
  const names = ['first', 'second', 'third']
  const results = await Promise.allSettled(names.map(async name => await inGroupTransaction(db, async trx => {
    await trx.insertInto('users').values({ username: name, username_key: name, password_hash: 'x', created_at: 1 }).execute()
    if (name === 'second') throw new Error('second changed its mind')
    return name
  })))
  t.same(results.map(r => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.match(results[1], { reason: { message: 'second changed its mind' } }, 'the failed write gets its own error')
  const stored = await db.selectFrom('users').select('username').orderBy('username').execute()
  t.same(stored.map(row => row.username), ['first', 'third'], "the failed write's insert was undone, the others' kept")
})

t.test('a constraint violation in a group is that write\'s error alone', async t => {
  const app = await build(t)
  const { db } = app
  await createUser(db, 'taken', 'x')
  const results = await Promise.allSettled(['fresh', 'taken', 'other'].map(async name => await inGroupTransaction(db, async trx => {
    await trx.insertInto('users').values({ username: name, username_key: name, password_hash: 'x', created_at: 1 }).execute()
    return name
  })))
  t.same(results.map(r => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  const stored = await db.selectFrom('users').select('username').orderBy('username').execute()
  t.same(stored.map(row => row.username), ['fresh', 'other', 'taken'])
})

t.test('writes of one turn of the event loop share a transaction on SQLite, at most MAX_GROUP each', { skip: postgresUrl !== undefined && 'SQLite only: on PostgreSQL each write has its own transaction' }, async t => {
  const app = await build(t)
  const { db } = app
  const count = MAX_GROUP + 10
  // SQLite's total_changes() counts the rows changed on the connection; inside one
  // transaction a write sees the rows of the writes grouped before it
  const seen = await Promise.all(Array.from({ length: count }, async (_, i) => await inGroupTransaction(db, async trx => {
    await trx.insertInto('users').values({ username: `u${i}`, username_key: `u${i}`, password_hash: 'x', created_at: 1 }).execute()
    const { rows } = await sql<{ n: number }>`select count(*) as n from users`.execute(trx)
    return rows[0]?.n
  })))
  t.same(seen, Array.from({ length: count }, (_, i) => i + 1), 'each write sees those before it, in order')
  const order = await db.selectFrom('users').select('id').orderBy('id').execute()
  t.equal(order.length, count)
})

t.test('a hold waits for the group being committed, and no write commits until it is released', { skip: postgresUrl !== undefined && 'SQLite only: nothing to hold on PostgreSQL' }, async t => {
  const app = await build(t)
  const { db } = app
  const committed: string[] = []
  const write = async (name: string, gate?: Promise<void>): Promise<void> => {
    await inGroupTransaction(db, async trx => {
      await trx.insertInto('users').values({ username: name, username_key: name, password_hash: 'x', created_at: 1 }).execute()
      await gate
    })
    committed.push(name)
  }
  let open = (): void => {}
  const first = write('before', new Promise<void>(resolve => { open = resolve }))
  await new Promise(resolve => setImmediate(resolve)) // its group is under way, waiting at the gate
  let holding = false
  const hold = holdGroupCommits(db).then(release => { holding = true; return release })
  await new Promise(resolve => setTimeout(resolve, 20))
  t.notOk(holding, 'the hold waits for the group under way')
  open()
  const release = await hold
  t.same(committed, ['before'], 'which committed before the hold took effect')
  await first
  const held = [write('held1'), write('held2')]
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(committed, ['before'], 'nothing commits while held')
  const stored = await db.selectFrom('users').select('username').execute()
  t.same(stored.map(row => row.username), ['before'], 'nor is anything written')
  release()
  release() // a second call changes nothing
  await Promise.all(held)
  t.same(committed, ['before', 'held1', 'held2'], 'once released, the held writes commit')
  t.same(await holdGroupCommits(db).then(again => { again(); return 'ok' }), 'ok', 'with nothing under way a hold resolves at once')
})

t.test("inside a caller's transaction the work is part of it, and goes with its rollback", async t => {
  const app = await build(t)
  const { db } = app
  await t.rejects(db.transaction().execute(async trx => {
    t.equal(await inGroupTransaction(trx, async inner => {
      await inner.insertInto('users').values({ username: 'inner', username_key: 'inner', password_hash: 'x', created_at: 1 }).execute()
      return 'done'
    }), 'done')
    throw new Error('the caller changes its mind')
  }), /changes its mind/)
  t.same(await db.selectFrom('users').select('username').execute(), [], 'rolled back with the caller')
})

t.test('on PostgreSQL each write has a transaction of its own', { skip: postgresUrl === undefined && 'needs DATABASE_URL=postgres://...' }, async t => {
  const app = await build(t)
  const transactions = await Promise.all([1, 2, 3].map(async () => await inGroupTransaction(app.db, async trx => {
    const { rows } = await sql<{ tx: string }>`select txid_current()::text as tx`.execute(trx)
    return rows[0]?.tx
  })))
  t.equal(new Set(transactions).size, 3, `three transactions: ${transactions.join(', ')}`)
})

t.test('concurrent sends all answer 201, each once, with gapless event streams', async t => {
  const app = await build(t)
  const people = await Promise.all(['alice', 'bob', 'carol'].map(async name => ({ name, token: await user(app, name) })))
  const [alice, bob, carol] = people as [typeof people[0], typeof people[0], typeof people[0]]
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  const replies = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
    const [from, to] = i % 3 === 0 ? [alice, bob] : i % 3 === 1 ? [bob, alice] : [carol, alice]
    return await call(app, from.token, { method: 'POST', url: '/send_message', payload: { recipient_username: to.name, sender_blob: `s${i}`, recipient_blob: `r${i}` } })
  }))
  t.same(replies.map(r => r.statusCode), Array(60).fill(201))
  t.equal(new Set(replies.map(r => (r.json() as { id: number }).id)).size, 60, 'sixty distinct messages')
  for (const { name, token } of people) {
    const res = await call(app, token, { url: '/sync?limit=500' })
    t.equal(res.statusCode, 200)
    const { events } = res.json() as { events: Array<{ cursor: string, type: string }> }
    // a cursor is <stream epoch>-<seq>
    const seqs = events.map(e => Number(e.cursor.split('-')[1]))
    t.same(seqs, Array.from({ length: events.length }, (_, i) => i + 1), `${name}'s stream has no gap`)
    t.equal(events.filter(e => e.type === 'message').length, ({ alice: 60, bob: 40, carol: 20 } as Record<string, number>)[name], `${name} has an event for each message sent or received`)
  }
})
