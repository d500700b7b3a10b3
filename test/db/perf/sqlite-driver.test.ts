import SQLite from 'better-sqlite3'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Kysely, sql, type Generated } from 'kysely'
import t, { type Test } from 'tap'
import { CachingSqliteDialect } from '../../../db/perf/sqlite-driver.js'

// The statement-caching SQLite dialect behind every SQLite database of the server: the
// same results as Kysely's own driver, whatever the cache holds.

interface Db { items: { id: Generated<number>, name: string, n: number } }

function fresh (t: Test): Kysely<Db> {
  const db = new Kysely<Db>({ dialect: new CachingSqliteDialect(new SQLite(':memory:')) })
  t.teardown(async () => { await db.destroy() })
  return db
}

async function createItems (db: Kysely<Db>): Promise<void> {
  await db.schema.createTable('items')
    .addColumn('id', 'integer', col => col.primaryKey().autoIncrement())
    .addColumn('name', 'text', col => col.notNull().unique())
    .addColumn('n', 'integer', col => col.notNull())
    .execute()
}

async function withTable (t: Test): Promise<Kysely<Db>> {
  const db = fresh(t)
  await createItems(db)
  return db
}

const names = async (db: Kysely<Db>): Promise<string[]> =>
  (await db.selectFrom('items').select('name').orderBy('id').execute()).map(r => r.name)

t.test('a cached statement answers each call with its own parameters', async t => {
  const db = await withTable(t)
  const ids: number[] = []
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    ids.push((await db.insertInto('items').values({ name, n: i }).returning('id').executeTakeFirstOrThrow()).id)
  }
  t.same(ids, [1, 2, 3], 'insert ... returning goes through the cache too')
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const row = await db.selectFrom('items').select(['id', 'n']).where('name', '=', name).executeTakeFirst()
    t.same(row, { id: i + 1, n: i })
  }
  t.equal(await db.selectFrom('items').select('id').where('name', '=', 'zzz').executeTakeFirst(), undefined)
  const updated = await db.updateTable('items').set({ n: 9 }).where('n', '>=', 1).executeTakeFirst()
  t.equal(updated.numUpdatedRows, 2n)
  const deleted = await db.deleteFrom('items').where('name', '=', 'a').executeTakeFirst()
  t.equal(deleted.numDeletedRows, 1n)
  const inserted = await db.insertInto('items').values({ name: 'd', n: 0 }).executeTakeFirst()
  t.equal(inserted.insertId, 4n)
  t.same(await names(db), ['b', 'c', 'd'])
})

t.test('a statement prepared before a schema change still sees the new schema', async t => {
  const db = await withTable(t)
  await db.insertInto('items').values({ name: 'a', n: 1 }).execute()
  const all = sql<Record<string, unknown>>`select * from items`
  t.same(Object.keys((await all.execute(db)).rows[0] ?? {}), ['id', 'name', 'n'])
  await sql`alter table items add column extra text`.execute(db)
  t.same(Object.keys((await all.execute(db)).rows[0] ?? {}), ['id', 'name', 'n', 'extra'])
})

t.test('rows come back as objects named by their columns, aliases and expressions included', async t => {
  const db = await withTable(t)
  await db.insertInto('items').values([{ name: 'a', n: 1 }, { name: 'b', n: 2 }]).execute()
  const rows = await db.selectFrom('items').select(['name', 'n as x']).select(eb => eb('n', '+', 1).as('next')).orderBy('n').execute()
  t.same(rows, [{ name: 'a', x: 1, next: 2 }, { name: 'b', x: 2, next: 3 }])
  const inserted = await db.insertInto('items').values({ name: 'c', n: 3 }).returning(['id', 'name']).executeTakeFirst()
  t.match(inserted, { id: Number, name: 'c' })
  const { rows: counted } = await sql<{ c: number }>`select count(*) as c from items`.execute(db)
  t.same(counted, [{ c: 3 }])
  await sql`alter table items add column extra text`.execute(db)
  t.same(await db.selectFrom('items').select(['name', 'n as x']).where('n', '=', 1).execute(), [{ name: 'a', x: 1 }], 'a named query is unchanged by a new column')
})

t.test('transactions commit, roll back, and hold the one connection', async t => {
  const db = await withTable(t)
  await db.transaction().execute(async trx => {
    await trx.insertInto('items').values({ name: 'kept', n: 1 }).execute()
  })
  await t.rejects(db.transaction().execute(async trx => {
    await trx.insertInto('items').values({ name: 'dropped', n: 2 }).execute()
    throw new Error('abort')
  }), /abort/)
  t.same(await names(db), ['kept'])

  // a query outside a running transaction waits for it instead of joining it
  const order: string[] = []
  let outside: Promise<unknown> | undefined
  await db.transaction().execute(async trx => {
    await trx.insertInto('items').values({ name: 'inside', n: 3 }).execute()
    outside = names(db).then(list => { order.push(`outside saw ${list.join(',')}`) })
    await new Promise(resolve => setImmediate(resolve))
    order.push('commit')
  })
  await outside
  t.same(order, ['commit', 'outside saw kept,inside'])

  // a failing statement releases the connection
  await t.rejects(db.insertInto('items').values({ name: 'kept', n: 4 }).execute(), /UNIQUE/)
  t.same(await names(db), ['kept', 'inside'])
})

t.test('savepoints roll back part of a transaction', async t => {
  const db = await withTable(t)
  const trx = await db.startTransaction().execute()
  await trx.insertInto('items').values({ name: 'first', n: 1 }).execute()
  const sp = await trx.savepoint('before "second"').execute()
  await sp.insertInto('items').values({ name: 'second', n: 2 }).execute()
  const back = await sp.rollbackToSavepoint('before "second"').execute()
  const sp2 = await back.savepoint('third').execute()
  await sp2.insertInto('items').values({ name: 'third', n: 3 }).execute()
  await (await sp2.releaseSavepoint('third').execute()).commit().execute()
  t.same(await names(db), ['first', 'third'])
})

t.test('more distinct statements than the cache holds still run', async t => {
  const db = await withTable(t)
  await db.insertInto('items').values({ name: 'a', n: 7 }).execute()
  for (let i = 0; i < 1100; i++) {
    const row = await sql<{ v: number }>`select n + ${sql.lit(i)} as v from items`.execute(db)
    if (row.rows[0]?.v !== 7 + i) t.fail(`statement ${i} returned ${JSON.stringify(row.rows)}`)
  }
  t.same((await sql<{ v: number }>`select n as v from items`.execute(db)).rows, [{ v: 7 }])
})

t.test('streams rows of a select, and refuses to stream a write', async t => {
  const db = await withTable(t)
  await db.insertInto('items').values([{ name: 'a', n: 1 }, { name: 'b', n: 2 }]).execute()
  const seen: string[] = []
  for await (const row of db.selectFrom('items').select('name').orderBy('id').stream()) seen.push(row.name)
  t.same(seen, ['a', 'b'])
  await t.rejects(async () => {
    for await (const row of db.deleteFrom('items').returning('name').stream()) seen.push(row.name)
  }, /streams only/)
})

// The reads of one turn of the event loop share one read transaction (see the driver).

async function onFile (t: Test): Promise<{ db: Kysely<Db>, main: SQLite.Database, other: SQLite.Database, dialect: CachingSqliteDialect, file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cc-driver-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'db.sqlite')
  const main = new SQLite(file)
  main.pragma('journal_mode = WAL')
  const dialect = new CachingSqliteDialect(main)
  const db = new Kysely<Db>({ dialect })
  await createItems(db)
  const other = new SQLite(file) // another connection, as the admin CLI or a shell would be
  t.teardown(async () => { other.close(); await db.destroy() })
  return { db, main, other, dialect, file }
}

const nextTurn = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }
const count = async (db: Kysely<Db>): Promise<number> => Number((await db.selectFrom('items').select(eb => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)
const countOn = (sqlite: SQLite.Database): number => (sqlite.prepare('select count(*) as n from items').get() as { n: number }).n

t.test('the reads of one turn share one read transaction, which ends with the turn', async t => {
  const { db, main, other } = await onFile(t)
  await db.insertInto('items').values({ name: 'a', n: 1 }).execute()
  await nextTurn()
  t.equal(await count(db), 1)
  t.ok(main.inTransaction, 'the first read of the turn opened a read transaction')
  other.prepare("insert into items (name, n) values ('b', 2)").run()
  t.equal(await count(db), 1, 'a read later in the same turn sees the same snapshot')
  await nextTurn()
  t.notOk(main.inTransaction, 'it ended with the turn')
  t.equal(await count(db), 2, "the next turn's reads see what another connection committed meanwhile")
})

t.test('a write after reads in the same turn commits before it answers, with RETURNING or inside a transaction', async t => {
  const { db, main, other } = await onFile(t)
  await nextTurn()
  t.equal(await count(db), 0)
  t.ok(main.inTransaction, 'a read transaction is open')
  const [row] = await db.insertInto('items').values({ name: 'a', n: 1 }).returning('id').execute()
  t.equal(row?.id, 1)
  t.notOk(main.inTransaction, 'the write (a reader, with RETURNING) ended the read transaction and committed on its own')
  t.equal(countOn(other), 1, 'another connection sees it at once')

  t.equal(await count(db), 1)
  await db.updateTable('items').set({ n: 2 }).where('name', '=', 'a').execute()
  t.notOk(main.inTransaction)
  t.equal((other.prepare("select n from items where name = 'a'").get() as { n: number }).n, 2, 'a plain write too')

  t.equal(await count(db), 1)
  await db.transaction().execute(async trx => {
    await trx.insertInto('items').values({ name: 'b', n: 3 }).execute()
    t.equal(await count(trx), 2, 'the transaction sees its own write')
  })
  t.equal(countOn(other), 2, 'a transaction begun in a turn of reads commits as usual')
})

t.test('a streamed query begun in a turn of reads runs on across turns', async t => {
  const { db } = await onFile(t)
  await db.insertInto('items').values([{ name: 'a', n: 1 }, { name: 'b', n: 2 }, { name: 'c', n: 3 }]).execute()
  await nextTurn()
  t.equal(await count(db), 3)
  const seen: string[] = []
  for await (const row of db.selectFrom('items').select('name').orderBy('id').stream()) {
    seen.push(row.name)
    await nextTurn()
  }
  t.same(seen, ['a', 'b', 'c'])
  t.equal(await count(db), 3)
})

t.test('endReads ends the turn\'s read transaction, so that a checkpoint on the connection can empty the log', async t => {
  const { db, main, dialect, file } = await onFile(t)
  main.pragma('wal_autocheckpoint = 0')
  await db.insertInto('items').values({ name: 'a', n: 1 }).execute()
  await nextTurn()
  t.equal(await count(db), 1)
  t.ok(statSync(`${file}-wal`).size > 0, 'the log holds the write')
  dialect.endReads()
  t.notOk(main.inTransaction)
  const [result] = main.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>
  t.equal(result?.busy, 0, 'nothing kept the checkpoint from finishing')
  t.equal(statSync(`${file}-wal`).size, 0, 'the log is empty')
})
