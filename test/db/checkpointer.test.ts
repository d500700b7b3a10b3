import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import SQLite from 'better-sqlite3'
import { sql } from 'kysely'
import t, { type Test } from 'tap'
import { connect } from '../../db/connect.js'
import { migrateToLatest } from '../../db/migrate.js'

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
