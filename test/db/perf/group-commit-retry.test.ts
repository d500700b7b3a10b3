import t from 'tap'
import { inGroupTransaction } from '../../../db/perf/group-commit.js'
import { build, postgresUrl } from '../../helper.js'

// A group of writes runs without savepoints first (db/perf/group-commit.ts); only a failure
// in it makes the group run again, each write in a savepoint of its own.

const sqliteOnly = { skip: postgresUrl !== undefined && 'SQLite only: on PostgreSQL each write has its own transaction' }

t.test('a group whose writes all succeed runs each write once', sqliteOnly, async t => {
  const app = await build(t)
  const runs = new Map<string, number>()
  const names = ['a', 'b', 'c', 'd']
  const results = await Promise.all(names.map(async name => await inGroupTransaction(app.db, async trx => {
    runs.set(name, (runs.get(name) ?? 0) + 1)
    await trx.insertInto('users').values({ username: name, username_key: name, password_hash: 'x', created_at: 1 }).execute()
    return name
  })))
  t.same(results, names)
  t.same([...runs.values()], [1, 1, 1, 1], 'no write ran twice')
})

t.test("after a failure the group runs again: the others' rows are stored once, the failed write's not at all", sqliteOnly, async t => {
  const app = await build(t)
  const runs = new Map<string, number>()
  const names = ['first', 'second', 'third']
  const results = await Promise.allSettled(names.map(async name => await inGroupTransaction(app.db, async trx => {
    runs.set(name, (runs.get(name) ?? 0) + 1)
    await trx.insertInto('users').values({ username: name, username_key: name, password_hash: 'x', created_at: 1 }).execute()
    // fails on its first run only: the group's second run, with savepoints, commits it too
    if (name === 'second' && runs.get(name) === 1) throw new Error('not this time')
    return name
  })))
  t.same(results.map(r => r.status), ['fulfilled', 'fulfilled', 'fulfilled'], "a write that succeeds on the group's second run stands")
  t.same(Object.fromEntries(runs), { first: 2, second: 2, third: 1 }, 'the writes up to the failure ran again, the rest once')
  const stored = await app.db.selectFrom('users').select('username').orderBy('username').execute()
  t.same(stored.map(row => row.username), ['first', 'second', 'third'], 'each row once: the first run was rolled back')
})
