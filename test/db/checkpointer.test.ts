import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import SQLite from 'better-sqlite3'
import { Kysely, sql } from 'kysely'
import t, { type Test } from 'tap'
import { checkpointerStarted, connect, observeWalHolds } from '../../db/connect.js'
import { migrateToLatest } from '../../db/migrate.js'
import { startCheckpointer } from '../../db/checkpointer.js'
import { holdGroupCommits, inGroupTransaction } from '../../db/perf/group-commit.js'
import { CachingSqliteDialect } from '../../db/perf/sqlite-driver.js'
import type { Database } from '../../db/schema.js'

// WAL checkpoints run on a worker thread, not on commit: the log still reaches the
// database file, and a committed write survives the process being killed.

function tempFile (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'cryptachat-ckpt-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return join(dir, 'db.sqlite')
}

t.test('the connection leaves checkpoints to the worker, which copies the log into the file', async t => {
  const file = tempFile(t)
  const db = connect({ kind: 'sqlite', file })
  t.teardown(async () => { await db.destroy() })
  await migrateToLatest(db)
  const autocheckpoint = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db)
  t.same(autocheckpoint.rows, [{ wal_autocheckpoint: 0 }], 'no checkpoint on commit')
  const before = statSync(file).size
  for (let i = 0; i < 300; i++) {
    await db.insertInto('messages').values({ sender_id: 1, recipient_id: 2, user_lo: 1, user_hi: 2, sender_blob: 'x'.repeat(4000), recipient_blob: 'y', created_at: i }).execute()
  }
  // the worker checkpoints every 200 ms; give a busy machine plenty of time
  for (let i = 0; i < 150 && statSync(file).size < before + 1_000_000; i++) await sleep(100)
  t.ok(statSync(file).size >= before + 1_000_000, `the database file grew from ${before} to ${statSync(file).size} bytes`)
})

t.test('a message stored before the process is killed is there after a restart', async t => {
  const file = tempFile(t)
  const child = spawn(process.execPath, [...process.execArgv, join(import.meta.dirname, '../fixtures/write-and-die.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('done\n')) resolve()
    })
    child.once('exit', code => { reject(new Error(`the writer exited early (${code})`)) })
  })
  child.kill('SIGKILL')
  await new Promise(resolve => child.once('exit', resolve))
  const reported = out.split('\n').filter(line => /^\d+$/.test(line)).map(Number).sort((a, b) => a - b)
  t.equal(reported.length, 200)
  const reopened = new SQLite(file)
  t.teardown(() => { reopened.close() })
  const ids = (reopened.prepare('select id from messages order by id').all() as Array<{ id: number }>).map(r => r.id)
  t.same(ids, reported, 'every reported message survived')
})

t.test('a connection closed while its worker still starts closes, and the file stays usable', async t => {
  const file = tempFile(t)
  for (let i = 0; i < 3; i++) {
    const db = connect({ kind: 'sqlite', file })
    await migrateToLatest(db)
    await db.insertInto('messages').values({ sender_id: 1, recipient_id: 2, user_lo: 1, user_hi: 2, sender_blob: 'x', recipient_blob: 'y', created_at: i }).execute()
    await db.destroy()
  }
  const reopened = new SQLite(file)
  t.teardown(() => { reopened.close() })
  t.same(reopened.prepare('select created_at from messages order by id').all(), [{ created_at: 0 }, { created_at: 1 }, { created_at: 2 }])
  t.same(reopened.pragma('integrity_check'), [{ integrity_check: 'ok' }])
})

t.test('truncate empties the WAL; a reader holding the log delays it, and it completes without a new request once the reader lets go', async t => {
  const file = tempFile(t)
  const sqlite = new SQLite(file)
  sqlite.pragma('journal_mode = WAL')
  const checkpointer = startCheckpointer(sqlite, file, { intervalMs: 50 })
  t.teardown(async () => { await checkpointer.stop(); sqlite.close() })
  sqlite.exec('create table t (x text)')
  const insert = sqlite.prepare('insert into t values (?)')
  for (let i = 0; i < 200; i++) insert.run('x'.repeat(4000))
  t.ok(statSync(`${file}-wal`).size > 800_000, 'the log holds the writes')

  const reader = new SQLite(file)
  t.teardown(() => { if (reader.open) reader.close() })
  reader.exec('begin')
  reader.prepare('select count(*) from t').get() // a snapshot: the log cannot be reset under it
  t.equal(await checkpointer.truncate(500), false, 'not while a reader uses the log')
  t.ok(statSync(`${file}-wal`).size > 0)
  reader.exec('commit')
  for (let i = 0; i < 100 && statSync(`${file}-wal`).size > 0; i++) await sleep(100)
  t.equal(statSync(`${file}-wal`).size, 0, 'the worker retried and truncated the log')
  t.equal(await checkpointer.truncate(), true, 'a request with nothing in the way succeeds')
})

t.test("a truncation on the connection itself first ends the connection's own read transaction", async t => {
  const file = tempFile(t)
  const sqlite = new SQLite(file)
  sqlite.pragma('journal_mode = WAL')
  const dialect = new CachingSqliteDialect(sqlite)
  const db = new Kysely<{ t: { x: string } }>({ dialect })
  sqlite.exec('create table t (x text)')
  const checkpointer = startCheckpointer(sqlite, file, { endReads: () => { dialect.endReads() } })
  t.teardown(async () => { await checkpointer.stop(); sqlite.close() })
  const insert = sqlite.prepare('insert into t values (?)')
  for (let i = 0; i < 50; i++) insert.run('x'.repeat(4000))
  t.ok(statSync(`${file}-wal`).size > 200_000, 'the log holds the writes')
  // all in one turn of the event loop: the worker's "ready" cannot arrive before the
  // truncation, which therefore runs here, on the connection, while a read of this turn is open
  t.equal((await db.selectFrom('t').select('x').execute()).length, 50)
  t.ok(sqlite.inTransaction, "the turn's read transaction is open")
  const truncated = checkpointer.truncate(500)
  t.equal(statSync(`${file}-wal`).size, 0, 'the log was truncated at once, on the connection')
  t.equal(await truncated, true)
})

t.test('a truncation still pending when the connection closes is done before it closes', async t => {
  const file = tempFile(t)
  const sqlite = new SQLite(file)
  sqlite.pragma('journal_mode = WAL')
  const checkpointer = startCheckpointer(sqlite, file, { intervalMs: 60_000 }) // no tick: only the stop can do it
  sqlite.exec('create table t (x text)')
  const reader = new SQLite(file)
  t.teardown(() => { if (reader.open) reader.close() })
  sqlite.prepare('insert into t values (?)').run('x'.repeat(4000))
  reader.exec('begin')
  reader.prepare('select count(*) from t').get()
  t.equal(await checkpointer.truncate(100), false)
  reader.exec('commit')
  await checkpointer.stop()
  t.equal(statSync(`${file}-wal`).size, 0, 'the stop truncated the log')
  sqlite.close()
})

/**
 * `writes` messages through the group commit, one after the other with no pause: the worker
 * is always a few commits behind. Returns the largest log seen. A log that never started over
 * would hold every page written: about seven a message (the row, five indexes, the sequence).
 */
async function steadyWrites (db: Kysely<Database>, file: string, writes: number): Promise<number> {
  let largest = 0
  for (let i = 0; i < writes; i++) {
    await inGroupTransaction(db, async trx => {
      await trx.insertInto('messages').values({ sender_id: 1, recipient_id: 2, user_lo: 1, user_hi: 2, sender_blob: 'x'.repeat(3000), recipient_blob: 'y', created_at: i }).execute()
    })
    if (i % 50 === 0) largest = Math.max(largest, statSync(`${file}-wal`).size)
  }
  return largest
}

const MB = 1024 * 1024

/**
 * A migrated file and the connection connect.ts makes of it, but with a log that starts over
 * at 100 pages, looked at every 20 ms; `holds()` counts the times the writes were held.
 */
async function shortLog (t: Test, file: string): Promise<{ db: Kysely<Database>, sqlite: SQLite.Database, holds: () => number, held: number[] }> {
  const migrated = connect({ kind: 'sqlite', file })
  await migrateToLatest(migrated)
  await migrated.destroy()
  const sqlite = new SQLite(file)
  sqlite.pragma('journal_mode = WAL')
  let holds = 0
  const checkpointer = startCheckpointer(sqlite, file, { intervalMs: 20, restartPages: 100, holdWrites: async () => { holds++; return await holdGroupCommits(db) } })
  const db: Kysely<Database> = new Kysely<Database>({ dialect: new CachingSqliteDialect(sqlite, async () => { await checkpointer.stop() }) })
  t.teardown(async () => { await db.destroy() })
  t.ok(await checkpointer.started, 'the worker runs (it starts slowly under a TypeScript loader)')
  const held: number[] = []
  checkpointer.observeHolds(seconds => { held.push(seconds) })
  return { db, sqlite, holds: () => holds, held }
}

t.test('under a steady stream of writes the log starts over: the writes are held while the worker copies its last pages', async t => {
  const file = tempFile(t)
  const { db, sqlite, holds, held } = await shortLog(t, file)
  // about 150 MB of pages in all
  const writes = 5000
  const largest = await steadyWrites(db, file, writes)
  t.ok(largest < 25 * MB, `the log stayed under 25 MB: largest ${(largest / MB).toFixed(1)} MB`)
  const count = await db.selectFrom('messages').select(eb => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  t.equal(Number(count.n), writes, 'every write was committed')
  t.same(sqlite.pragma('integrity_check'), [{ integrity_check: 'ok' }])
  await sleep(100) // a hold under way ends
  t.ok(holds() > 0 && held.length === holds(), `each hold was observed once it ended (${held.length} of ${holds()})`)
  const quiet = holds()
  await sleep(200) // ten of the worker's looks at a long log, every page of it copied
  t.equal(holds(), quiet, 'no hold once the writes stop: the next write starts the log over by itself')
  t.ok(held.every(seconds => seconds > 0 && seconds < 1), `each lasted under the second a hold may take: ${held.map(s => (s * 1000).toFixed(1)).join(', ')} ms`)
})

t.test('no hold while a reader keeps the log from being copied: the writes would wait for nothing', async t => {
  const file = tempFile(t)
  const { db, holds } = await shortLog(t, file)
  const reader = new SQLite(file)
  t.teardown(() => { if (reader.open) reader.close() })
  reader.exec('begin')
  reader.prepare('select count(*) from messages').get() // a snapshot from before the writes
  const largest = await steadyWrites(db, file, 1000)
  await sleep(200) // ten of the worker's looks at a long log
  t.ok(largest > 10 * 100 * 4096, `the log grew (${(largest / MB).toFixed(1)} MB)`)
  t.equal(holds(), 0, 'the writes were never held')
  reader.exec('commit')
  await steadyWrites(db, file, 500)
  t.ok(holds() > 0, `once the reader let go, the log started over (${holds()} holds)`)
})

t.test('connect() holds its writes for the checkpointer: the log of a server under steady load stays bounded', async t => {
  const file = tempFile(t)
  const db = connect({ kind: 'sqlite', file })
  t.teardown(async () => { await db.destroy() })
  await migrateToLatest(db)
  t.ok(await checkpointerStarted(db), 'the worker runs')
  let held = 0
  observeWalHolds(db, () => { held++ })
  // about 320 MiB of pages in all; the log starts over at 8192 pages (32 MiB), plus what is
  // written until the worker's next look (60 to 80 MiB here; a busy machine writes less meanwhile)
  const largest = await steadyWrites(db, file, 11_000)
  t.ok(largest < 160 * MB, `the log stayed under half of what was written: largest ${(largest / MB).toFixed(1)} MiB`)
  const limit = await sql<{ journal_size_limit: number }>`pragma journal_size_limit`.execute(db)
  t.same(limit.rows, [{ journal_size_limit: 64 * MB }], 'a log that starts over is cut back to 64 MiB')
  t.ok(held > 0, `observeWalHolds saw the holds (${held})`)
})
