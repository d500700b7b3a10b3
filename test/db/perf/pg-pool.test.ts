import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import pg from 'pg'
import { connect } from '../../../db/connect.js'
import { migrateToLatest } from '../../../db/migrate.js'
import { ReadPipeline, poolRows } from '../../../db/perf/pg-pool.js'
import { createUser } from '../../../db/users.js'
import { freshDatabaseEnv, postgresUrl } from '../../helper.js'
import { until } from '../../processes.js'

// On PostgreSQL the reads made outside a transaction share one connection in pipeline mode,
// and the reads of one turn of the event loop go out in one write (db/perf/pg-pool.ts).

const skip = postgresUrl === undefined && 'needs DATABASE_URL=postgres://...'
const url = postgresUrl ?? ''

function pipeline (t: Test): ReadPipeline {
  const reads = new ReadPipeline({ connectionString: url })
  t.teardown(async () => { await reads.end() })
  return reads
}

async function pidOf (reads: ReadPipeline): Promise<number> {
  const [row] = await reads.rows('select pg_backend_pid() as pid', []) as Array<{ pid: number }>
  return row?.pid ?? NaN
}

async function backendAlive (pid: number): Promise<boolean> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 1
  } finally {
    await client.end()
  }
}

/** How many times any socket of this process wrote while `work` ran. */
async function socketWritesDuring (work: () => Promise<unknown>): Promise<number> {
  const proto = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
  const originals = { _write: proto._write, _writev: proto._writev }
  let writes = 0
  for (const name of ['_write', '_writev'] as const) {
    const original = originals[name]
    proto[name] = function (this: unknown, ...args: unknown[]) { writes++; return original.apply(this, args) }
  }
  try {
    await work()
  } finally {
    Object.assign(proto, originals)
  }
  return writes
}

t.test('the reads of one turn share one connection and go out in one write, each answered with its own rows', { skip }, async t => {
  const reads = pipeline(t)
  const pid = await pidOf(reads)
  let answers: Array<Array<{ n: number, pid: number }>> = []
  const writes = await socketWritesDuring(async () => {
    answers = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      await reads.rows('select $1::int as n, pg_backend_pid() as pid', [i]) as Array<{ n: number, pid: number }>))
  })
  t.same(answers.map(rows => rows.map(row => row.n)), Array.from({ length: 20 }, (_, i) => [i]), 'each read its own answer, in order')
  t.ok(answers.every(rows => rows[0]?.pid === pid), 'all on the one connection')
  t.equal(writes, 1, 'twenty reads, one write')
  t.same(await reads.rows('select $1::int as n', [7]), [{ n: 7 }], 'a later turn is written too')
})

t.test('a read that fails fails alone: the reads around it are answered', { skip }, async t => {
  const reads = pipeline(t)
  const [before, failed, after] = await Promise.allSettled([
    reads.rows('select 1 as x', []),
    reads.rows('select 1 / $1::int as x', [0]),
    reads.rows('select 3 as x', [])
  ])
  t.same(before, { status: 'fulfilled', value: [{ x: 1 }] })
  t.match(failed, { status: 'rejected', reason: { message: /division by zero/ } })
  t.same(after, { status: 'fulfilled', value: [{ x: 3 }] })
})

t.test('a lost connection is replaced by the next read', { skip }, async t => {
  const reads = pipeline(t)
  const pid = await pidOf(reads)
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query('select pg_terminate_backend($1)', [pid])
  await admin.end()
  let failures = 0
  let next = NaN
  for (let i = 0; i < 40 && Number.isNaN(next); i++) {
    try {
      next = await pidOf(reads)
    } catch {
      failures++
      await sleep(50)
    }
  }
  t.ok(Number.isInteger(next) && next !== pid, 'a new connection answers')
  t.ok(failures <= 1, 'at most the read sent on the dying connection fails')
})

t.test('end closes the connection; a read after it fails', { skip }, async t => {
  const reads = new ReadPipeline({ connectionString: url })
  const pid = await pidOf(reads)
  await reads.end()
  await t.rejects(reads.rows('select 1', []), /closed/)
  await t.resolves(until(async () => !await backendAlive(pid), 'its backend is gone', 2_000), 'its backend is gone')
})

t.test('outside a transaction a plain select goes on the pipeline, a locking select or a write on the pool; destroy ends both', { skip }, async t => {
  const env = await freshDatabaseEnv(t)
  const db = connect({ kind: 'postgres', url, schema: env.DATABASE_SCHEMA })
  let destroyed = false
  t.teardown(async () => { if (!destroyed) await db.destroy() })
  await migrateToLatest(db)
  await createUser(db, 'ann', 'x', 1)
  const adapter = db.getExecutor().adapter
  const pidBy = async (sql: string): Promise<number> => {
    const rows = await poolRows(adapter, false, sql, []) as Array<{ pid: number }>
    return rows[0]?.pid ?? NaN
  }
  const [first, second] = await Promise.all([pidBy('select pg_backend_pid() as pid'), pidBy('SELECT pg_backend_pid() as pid')])
  t.equal(first, second, 'reads share the pipeline')
  // the pool's client is busy until each answer comes: two at once take two clients, neither the pipeline's
  const [locking, write] = await Promise.all([
    pidBy('select pg_backend_pid() as pid from users for update'),
    pidBy('update users set token_version = token_version returning pg_backend_pid() as pid')
  ])
  t.not(locking, first, 'a select that locks rows takes a pooled client')
  t.not(write, first, 'a write takes a pooled client')
  t.equal(poolRows(adapter, true, 'select 1', []), undefined, 'a transaction runs on its own client')
  await db.destroy()
  destroyed = true
  await t.resolves(until(async () => !await backendAlive(first), 'the pipeline is closed', 2_000), 'destroying the database closed the pipeline')
})
