import t, { type Test } from 'tap'
import type { Kysely } from 'kysely'
import { connect } from '../../../db/connect.js'
import { migrateToLatest } from '../../../db/migrate.js'
import { precompile } from '../../../db/perf/precompiled.js'
import type { Database } from '../../../db/schema.js'
import { createUser } from '../../../db/users.js'
import { build, freshDatabaseEnv } from '../../helper.js'

// A precompiled query stands for what its builder makes with the real arguments. Under
// test each call builds that query too and compares: an argument that changes the shape
// (a list, a branch) cannot be a marker, and the check says so instead of running a
// different query than the one written.

async function sqlite (t: Test, checkPrecompiled: boolean): Promise<Kysely<Database>> {
  const db = connect({ kind: 'sqlite', file: ':memory:' }, { checkPrecompiled })
  t.teardown(async () => { await db.destroy() })
  await migrateToLatest(db)
  for (const name of ['ann', 'ben', 'cid']) await createUser(db, name, 'x', 1)
  return db
}

// its shape depends on the list: `in ?` with a marker, `in (?, ?)` with two ids
const byIds = precompile((db, p: { ids: number[] }) => db.selectFrom('users').select('username').where('id', 'in', p.ids))
// its shape depends on a branch the marker always takes one way
const byName = precompile((db, p: { name: string | null }) => db.selectFrom('users').select('username')
  .where('username', p.name === null ? 'is' : '=', p.name))
// nested arguments each stand where they are read
const between = precompile((db, p: { range: { from: number, to: number }, name: string }) => db.selectFrom('users').select('username')
  .where('id', '>=', p.range.from).where('id', '<=', p.range.to).where('username', '<>', p.name).orderBy('id'))

t.test('a well-formed precompiled query runs with its named arguments, checked or not', async t => {
  for (const checked of [true, false]) {
    const db = await sqlite(t, checked)
    t.same(await between.rows(db, { range: { from: 1, to: 3 }, name: 'ben' }), [{ username: 'ann' }, { username: 'cid' }])
    t.same(await between.rows(db, { range: { from: 2, to: 2 }, name: 'x' }), [{ username: 'ben' }], 'each call its own arguments')
    t.same(await byName.first(db, { name: 'cid' }), { username: 'cid' })
  }
})

t.test('the check throws for a query whose shape depends on an argument', async t => {
  const db = await sqlite(t, true)
  await t.rejects(byIds.rows(db, { ids: [1, 2] }), /an argument changed the query's shape[\s\S]*precompiled: .* in \?\n[\s\S]*built: .* in \(\?, \?\)/)
  await t.rejects(byName.rows(db, { name: null }), /precompiled: .* = \?\n[\s\S]*built: .* is null\n/)
  await t.rejects(db.transaction().execute(async trx => await byName.rows(trx, { name: null })), /shape/, 'in a transaction too')
})

t.test('without the check the marker quietly stands in the wrong query', async t => {
  const db = await sqlite(t, false)
  t.same(await byName.rows(db, { name: null }), [], '`username = null` matches nothing, where `is null` was written')
})

t.test('the app built for tests (NODE_ENV=test) checks its database', async t => {
  const app = await build(t)
  await t.rejects(byName.rows(app.db, { name: null }), /shape/)
})

// On SQLite a precompiled call runs at once when the connection is free (perf/sqlite-driver.ts):
// while a transaction holds it, a call from outside must wait its turn, not run inside it.
t.test('a precompiled call waits while another transaction holds the connection, and runs inside its own', async t => {
  const db = await sqlite(t, false)
  let inside: unknown
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  let entered!: () => void
  const started = new Promise<void>(resolve => { entered = resolve })
  const transaction = db.transaction().execute(async trx => {
    await trx.updateTable('users').set({ username: 'dan' }).where('username', '=', 'cid').execute()
    inside = await byName.first(trx, { name: 'dan' })
    entered()
    await held
    throw new Error('rolled back')
  })
  await started
  let outside: unknown = 'not yet'
  const read = byName.first(db, { name: 'dan' }).then(row => { outside = row })
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(outside, 'not yet', 'the outside call waits for the transaction')
  t.same(inside, { username: 'dan' }, "inside, the transaction's own write is seen")
  release()
  await t.rejects(transaction, /rolled back/)
  await read
  t.equal(outside, undefined, 'after the rollback, the outside call sees no such row')
})

// On PostgreSQL a precompiled call outside a transaction takes a pooled client itself
// (perf/pg-pool.ts); inside one it must run on the transaction's client.
t.test('on either database, a precompiled call inside a transaction sees its writes, and one outside only what is committed', async t => {
  const env = await freshDatabaseEnv(t)
  const db = connect(env.DATABASE_URL?.startsWith('postgres') === true
    ? { kind: 'postgres', url: env.DATABASE_URL, schema: env.DATABASE_SCHEMA }
    : { kind: 'sqlite', file: ':memory:' })
  t.teardown(async () => { await db.destroy() })
  await migrateToLatest(db)
  for (const name of ['ann', 'ben', 'cid']) await createUser(db, name, 'x', 1)
  let inside: unknown
  const outside: unknown[] = []
  await t.rejects(db.transaction().execute(async trx => {
    await trx.updateTable('users').set({ username: 'dan' }).where('username', '=', 'cid').execute()
    inside = await byName.first(trx, { name: 'dan' })
    // on SQLite this one waits for the transaction's end; on PostgreSQL it reads at once
    byName.first(db, { name: 'dan' }).then(row => outside.push(row), () => {})
    await new Promise(resolve => setTimeout(resolve, 20))
    throw new Error('rolled back')
  }), /rolled back/)
  await new Promise(resolve => setTimeout(resolve, 20))
  t.same(inside, { username: 'dan' }, "inside, the transaction's own write")
  t.same(outside, [undefined], 'outside, never the uncommitted write')
  t.same(await byName.first(db, { name: 'cid' }), { username: 'cid' }, 'after the rollback, as before')
})
