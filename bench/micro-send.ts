import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import SQLite from 'better-sqlite3'
import { DummyDriver, Kysely, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler, sql } from 'kysely'
import { connect } from '../db/connect.js'
import { storeMessage } from '../db/messages.js'
import { createSchema, dropSchema, migrateToLatest } from '../db/migrate.js'
import type { Database } from '../db/schema.js'
import { blob } from './seed.js'

// What the SQLite writes of one message cost (issue 16). A fresh database with the real
// migrations, `users` users with two devices each and `history` older messages, then
// `sends` sends in groups of `group` (the writes of one event-loop turn):
//   --mode api  the real storeMessage (through the group commit): µs per send;
//   --mode pg   the real storeMessage on PostgreSQL: wall µs per send, and this process's CPU µs (pg's work, not PostgreSQL's);
//   --mode raw  the same statements through better-sqlite3 directly: µs per statement,
//               and the WAL frames (pages) each send appends.
// --variant changes one thing (see VARIANTS). Build and run:
//   npx tsc -p bench && node dist/bench/micro-send.js --mode raw --variant base
// Timings on a shared machine are noisy; instructions are not. Seed once (a first run with
// --cache), then count what SQLite executes for the sends alone:
//   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sqlite3_step \
//     node dist/bench/micro-send.js --mode raw --cache /tmp/micro --sends 1000 --variant base

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'api' },
    variant: { type: 'string', default: 'base' },
    sends: { type: 'string', default: '4000' },
    group: { type: 'string', default: '4' },
    users: { type: 'string', default: '5000' },
    history: { type: 'string', default: '50000' },
    plan: { type: 'boolean', default: false },
    // a folder that keeps each seeded database, so that a run under callgrind measures only the sends
    cache: { type: 'string' },
    // --mode pg: this PostgreSQL database (a throwaway schema in it)
    url: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' }
  }
})
const SENDS = Number(args.sends)
const GROUP = Number(args.group)
const USERS = Number(args.users)
const HISTORY = Number(args.history)

interface Variant {
  /** Pragmas run on the writing connection after connect.ts's. */
  pragmas?: string[]
  /** Schema changes run after the migrations and the seed. */
  schema?: (raw: SQLite.Database) => void
  /** raw mode: no SAVEPOINT / RELEASE around each send. */
  noSavepoint?: boolean
  /**
   * raw mode: no RETURNING (SQLite gathers a RETURNING statement's rows in an ephemeral
   * table, a temporary b-tree opened and closed each time): the message's id from
   * lastInsertRowid, the counters by an UPDATE and then a SELECT in the same transaction.
   */
  noReturning?: boolean
}

/** Rebuilds `table` from its CREATE statement changed by `edit`, with its rows and indexes. */
function rebuild (raw: SQLite.Database, table: string, edit: (create: string) => string): void {
  const create = raw.prepare('select sql from sqlite_master where type = \'table\' and name = ?').pluck().get(table) as string
  const indexes = raw.prepare('select sql from sqlite_master where type = \'index\' and tbl_name = ? and sql is not null').pluck().all(table) as string[]
  raw.pragma('foreign_keys = OFF')
  raw.transaction(() => {
    raw.exec(`alter table "${table}" rename to "${table}_old"`)
    raw.exec(edit(create))
    raw.exec(`insert into "${table}" select * from "${table}_old"`)
    raw.exec(`drop table "${table}_old"`)
    for (const index of indexes) raw.exec(index)
  })()
  raw.pragma('foreign_keys = ON')
}

// an event points at a message or at an envelope, never both; most messages carry no client_msg_id
function partialEventIndexes (raw: SQLite.Database): void {
  raw.exec(`drop index events_message; create index events_message on events (message_id) where message_id is not null;
    drop index events_envelope; create index events_envelope on events (envelope_id) where envelope_id is not null`)
}

function partialClientMsgId (raw: SQLite.Database): void {
  raw.exec(`drop index messages_sender_client_msg_id;
    create unique index messages_sender_client_msg_id on messages (sender_id, client_msg_id) where client_msg_id is not null`)
}

const VARIANTS: Record<string, Variant> = {
  base: {},
  'secure-delete-off': { pragmas: ['secure_delete = OFF'] },
  'secure-delete-fast': { pragmas: ['secure_delete = FAST'] },
  'no-savepoint': { noSavepoint: true },
  'temp-store-file': { pragmas: ['temp_store = FILE'] },
  'temp-store-file-no-savepoint': { pragmas: ['temp_store = FILE'], noSavepoint: true },
  'no-returning': { noReturning: true },
  'no-returning-no-savepoint': { noReturning: true, noSavepoint: true },
  'cache-64m': { pragmas: ['cache_size = -65536'] },
  'foreign-keys-off': { pragmas: ['foreign_keys = OFF'] },
  'devices-user-seq-index': { schema: raw => raw.exec('create index devices_user_seq on devices (user_id, id, event_seq)') },
  'events-without-rowid': { schema: raw => rebuild(raw, 'events', create => `${create} without rowid`) },
  'events-no-created-index': { schema: raw => raw.exec('drop index events_created') },
  'events-no-message-index': { schema: raw => raw.exec('drop index events_message') },
  'events-no-envelope-index': { schema: raw => raw.exec('drop index events_envelope') },
  'messages-no-created-index': { schema: raw => raw.exec('drop index messages_created') },
  // the index migration 0010 dropped, for comparison
  'messages-user-hi-index': { schema: raw => raw.exec('create index messages_user_hi on messages (user_hi, id)') },
  'messages-no-recipient-index': { schema: raw => raw.exec('drop index messages_recipient') },
  'events-partial-indexes': { schema: partialEventIndexes },
  'messages-partial-client-msg-id': { schema: partialClientMsgId },
  'partial-indexes': { schema: raw => { partialEventIndexes(raw); partialClientMsgId(raw) } },
  'messages-no-autoincrement': { schema: raw => rebuild(raw, 'messages', create => create.replace(/autoincrement/i, '')) }
}

const variant = VARIANTS[args.variant]
if (variant === undefined && args.mode !== 'pg') throw new Error(`unknown variant ${args.variant}; one of ${Object.keys(VARIANTS).join(', ')}`)

// the pragmas of db/connect.ts, for the raw connection
const CONNECT_PRAGMAS = ['secure_delete = ON', 'journal_mode = WAL', 'synchronous = NORMAL', 'foreign_keys = ON',
  'busy_timeout = 5000', 'temp_store = MEMORY', 'mmap_size = 1073741824']

async function prepare (file: string): Promise<void> {
  const db = connect({ kind: 'sqlite', file })
  await migrateToLatest(db)
  await db.destroy()
  const raw = new SQLite(file)
  raw.pragma('journal_mode = WAL')
  const now = Date.now() - 86400000
  raw.transaction(() => {
    const user = raw.prepare('insert into users (username, username_key, password_hash, created_at) values (?, ?, \'x\', ?) returning id')
    const device = raw.prepare('insert into devices (user_id, device_id, created_at, last_seen_at) values (?, 2, ?, ?)')
    for (let i = 1; i <= USERS; i++) {
      const name = `user${i}`
      const id = user.pluck().get(name, name, now) as number
      if (id !== i) throw new Error('user ids are expected to be 1..n')
      device.run(id, now, now)
    }
    // older traffic, so that the tables and their indexes have the depth of a used server
    const message = raw.prepare(`insert into messages (sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, created_at)
      values (?, ?, ?, ?, ?, ?, ?) returning id`)
    const event = raw.prepare('insert into events (device_id, seq, type, payload, message_id, created_at) values (?, ?, \'message\', ?, ?, ?)')
    const seqs = new Map<number, number>()
    const devices = raw.prepare('select id from devices where user_id = ?').pluck()
    for (let i = 0; i < HISTORY; i++) {
      const [a, b] = pair()
      const at = now + i
      const id = message.pluck().get(a, b, Math.min(a, b), Math.max(a, b), blob(), blob(), at) as number
      for (const u of [b, a]) {
        for (const d of devices.all(u) as number[]) {
          const seq = (seqs.get(d) ?? 0) + 1
          seqs.set(d, seq)
          event.run(d, seq, JSON.stringify({ sender_username: `user${a}`, recipient_username: `user${b}` }), id, at)
        }
      }
    }
    const bump = raw.prepare('update devices set event_seq = ? where id = ?')
    for (const [d, seq] of seqs) bump.run(seq, d)
  })()
  variant?.schema?.(raw)
  raw.pragma('wal_checkpoint(TRUNCATE)')
  raw.close()
}

// the same pairs in every run (mulberry32), so that instruction counts compare
let state = 16
function random (): number {
  state = (state + 0x6D2B79F5) | 0
  let t = Math.imul(state ^ (state >>> 15), 1 | state)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

function pair (): [number, number] {
  const a = 1 + Math.floor(random() * USERS)
  let b = 1 + Math.floor(random() * (USERS - 1))
  if (b >= a) b++
  return [a, b]
}

async function runApi (file: string, names: string[]): Promise<void> {
  const db = connect({ kind: 'sqlite', file })
  for (const pragma of variant?.pragmas ?? []) await sql.raw(`pragma ${pragma}`).execute(db)
  const send = async (): Promise<void> => {
    const [a, b] = pair()
    await storeMessage(db, {
      sender: { id: a, username: names[a - 1] as string },
      recipient: { id: b, username: names[b - 1] as string },
      sender_blob: blob(),
      recipient_blob: blob()
    })
  }
  const round = async (n: number): Promise<[number, number]> => {
    const started = process.hrtime.bigint()
    const cpu = process.cpuUsage()
    for (let i = 0; i < n; i += GROUP) await Promise.all(Array.from({ length: GROUP }, send))
    const { user, system } = process.cpuUsage(cpu)
    return [Number(process.hrtime.bigint() - started) / 1000 / n, (user + system) / n]
  }
  await round(Math.min(500, SENDS))
  const [perSend, cpuPerSend] = await round(SENDS)
  console.log(JSON.stringify({ mode: 'api', variant: args.variant, group: GROUP, sends: SENDS, us_per_send: Math.round(perSend * 10) / 10, cpu_us_per_send: Math.round(cpuPerSend * 10) / 10 }))
  await db.destroy()
}

function runRaw (file: string): void {
  const raw = new SQLite(file)
  for (const pragma of [...CONNECT_PRAGMAS, 'wal_autocheckpoint = 0', ...variant?.pragmas ?? []]) raw.pragma(pragma)
  // the SQL Kysely builds for storeMessage's statements (db/messages.ts, db/events.ts)
  const k = new Kysely<Database>({
    dialect: { createAdapter: () => new SqliteAdapter(), createDriver: () => new DummyDriver(), createIntrospector: db => new SqliteIntrospector(db), createQueryCompiler: () => new SqliteQueryCompiler() }
  })
  const m = { sender_id: 1, recipient_id: 2, user_lo: 1, user_hi: 2, sender_blob: '', recipient_blob: '', client_msg_id: null, created_at: 0 }
  const insertSql = k.insertInto('messages').values(m).returning(['id', 'created_at']).compile().sql
  const bumpSql = k.updateTable('devices').set(eb => ({ event_seq: eb('event_seq', '+', 1) })).where('user_id', 'in', [1, 2]).returning(['id', 'user_id', 'event_seq']).compile().sql
  const e = { device_id: 1, seq: 1, type: 'message', payload: '', message_id: 1, envelope_id: null, created_at: 0 }
  const insertNoReturningSql = k.insertInto('messages').values(m).compile().sql
  const bumpNoReturningSql = k.updateTable('devices').set(eb => ({ event_seq: eb('event_seq', '+', 1) })).where('user_id', 'in', [1, 2]).compile().sql
  const countersSql = k.selectFrom('devices').select(['id', 'user_id', 'event_seq']).where('user_id', 'in', [1, 2]).compile().sql
  const eventsSql = k.insertInto('events').values([e, e, e, e]).compile().sql
  if (args.plan) {
    for (const text of [insertSql, bumpSql, eventsSql]) {
      console.log(text)
      for (const row of raw.prepare(`explain query plan ${text}`).all(...Array.from({ length: (text.match(/\?/g) ?? []).length }, () => 1))) console.log('  ', JSON.stringify(row))
    }
  }
  const statements = {
    begin: raw.prepare('begin'),
    savepoint: raw.prepare('savepoint grouped'),
    insertMessage: raw.prepare(variant?.noReturning === true ? insertNoReturningSql : insertSql),
    bump: raw.prepare(variant?.noReturning === true ? bumpNoReturningSql : bumpSql),
    counters: raw.prepare(countersSql),
    insertEvents: raw.prepare(eventsSql),
    release: raw.prepare('release grouped'),
    commit: raw.prepare('commit')
  }
  type Name = keyof typeof statements
  const spent = Object.fromEntries(Object.keys(statements).map(name => [name, 0n])) as Record<Name, bigint>
  const timed = <T>(name: Name, run: () => T): T => {
    const started = process.hrtime.bigint()
    const result = run()
    spent[name] += process.hrtime.bigint() - started
    return result
  }
  const payload = JSON.stringify({ sender_username: 'user1', recipient_username: 'user2' })
  const send = (): void => {
    const [a, b] = pair()
    const at = Date.now()
    if (variant?.noSavepoint !== true) timed('savepoint', () => statements.savepoint.run())
    const values = [a, b, Math.min(a, b), Math.max(a, b), blob(), blob(), null, at]
    let stored: { id: number }
    let bumped: Array<{ id: number, user_id: number, event_seq: number }>
    if (variant?.noReturning === true) {
      stored = { id: Number(timed('insertMessage', () => statements.insertMessage.run(...values)).lastInsertRowid) }
      timed('bump', () => statements.bump.run(1, a, b))
      bumped = timed('counters', () => statements.counters.all(a, b)) as typeof bumped
    } else {
      stored = timed('insertMessage', () => statements.insertMessage.get(...values)) as { id: number }
      bumped = timed('bump', () => statements.bump.all(1, a, b)) as typeof bumped
    }
    const rows = [...bumped.filter(d => d.user_id === b), ...bumped.filter(d => d.user_id === a)]
    const params = rows.flatMap(d => [d.id, d.event_seq, 'message', payload, stored.id, null, at])
    timed('insertEvents', () => statements.insertEvents.run(...params))
    if (variant?.noSavepoint !== true) timed('release', () => statements.release.run())
  }
  const round = (n: number): [number, number] => {
    const started = process.hrtime.bigint()
    const cpu = process.cpuUsage()
    for (let i = 0; i < n; i += GROUP) {
      timed('begin', () => statements.begin.run())
      for (let j = 0; j < GROUP; j++) send()
      timed('commit', () => statements.commit.run())
    }
    const { user, system } = process.cpuUsage(cpu)
    return [Number(process.hrtime.bigint() - started) / 1000 / n, (user + system) / n]
  }
  round(Math.min(500, SENDS))
  for (const name of Object.keys(spent) as Name[]) spent[name] = 0n
  const walBefore = statSync(`${file}-wal`).size
  const [perSend, cpuPerSend] = round(SENDS)
  // no checkpoint meanwhile (wal_autocheckpoint = 0): the log grew by the frames of these sends
  const frames = (statSync(`${file}-wal`).size - walBefore) / (4096 + 24)
  const perStatement = Object.fromEntries(Object.entries(spent).map(([name, ns]) => [name, Math.round(Number(ns) / 100 / SENDS) / 10]))
  console.log(JSON.stringify({ mode: 'raw', variant: args.variant, group: GROUP, sends: SENDS, us_per_send: Math.round(perSend * 10) / 10, cpu_us_per_send: Math.round(cpuPerSend * 10) / 10, wal_pages_per_send: Math.round(frames / SENDS * 100) / 100, us_per_statement_per_send: perStatement }))
  raw.close()
}

const PG_VARIANTS: Record<string, string[]> = {
  base: [],
  'events-partial-indexes': ['drop index events_message', 'create index events_message on events (message_id) where message_id is not null',
    'drop index events_envelope', 'create index events_envelope on events (envelope_id) where envelope_id is not null'],
  'messages-partial-client-msg-id': ['drop index messages_sender_client_msg_id',
    'create unique index messages_sender_client_msg_id on messages (sender_id, client_msg_id) where client_msg_id is not null']
}

/** PostgreSQL: storeMessage is one statement (storeMessageWithEvents); µs per send, and its plan with timings. */
async function runPostgres (): Promise<void> {
  const schema = `micro_send_${process.pid}`
  await createSchema(args.url, schema)
  const db = connect({ kind: 'postgres', url: args.url, schema })
  try {
    await migrateToLatest(db)
    await sql`insert into users (username, username_key, password_hash, created_at)
      select 'user' || i, 'user' || i, 'x', 0 from generate_series(1, ${USERS}) i`.execute(db)
    await sql`insert into devices (user_id, device_id, created_at, last_seen_at) select id, 2, 0, 0 from users`.execute(db)
    await sql`insert into messages (sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, created_at)
      select s, r, least(s, r), greatest(s, r), repeat('x', 160), repeat('y', 160), i
      from (select i, 1 + (i * 7919) % ${USERS} as s, 1 + (i * 104729 + 1) % ${USERS} as r from generate_series(1::bigint, ${HISTORY}) i) m where s <> r`.execute(db)
    await sql`insert into events (device_id, seq, type, payload, message_id, created_at)
      select d.id, row_number() over (partition by d.id order by m.id), 'message', '{}', m.id, m.created_at
      from messages m join devices d on d.user_id in (m.sender_id, m.recipient_id)`.execute(db)
    await sql`update devices set event_seq = coalesce((select max(seq) from events where device_id = devices.id), 0)`.execute(db)
    const pgVariant = PG_VARIANTS[args.variant]
    if (pgVariant === undefined) throw new Error(`no PostgreSQL variant ${args.variant}; one of ${Object.keys(PG_VARIANTS).join(', ')}`)
    for (const statement of pgVariant) await sql.raw(statement).execute(db)
    await sql`analyze`.execute(db)
    const names = Array.from({ length: USERS }, (_, i) => `user${i + 1}`)
    const send = async (): Promise<void> => {
      const [a, b] = pair()
      await storeMessage(db, { sender: { id: a, username: names[a - 1] as string }, recipient: { id: b, username: names[b - 1] as string }, sender_blob: blob(), recipient_blob: blob() })
    }
    const round = async (n: number): Promise<{ wall: number, cpu: number }> => {
      const started = process.hrtime.bigint()
      const cpu = process.cpuUsage()
      for (let i = 0; i < n; i += GROUP) await Promise.all(Array.from({ length: GROUP }, send))
      const used = process.cpuUsage(cpu)
      return { wall: Number(process.hrtime.bigint() - started) / 1000 / n, cpu: (used.user + used.system) / n }
    }
    await round(Math.min(500, SENDS))
    const { wall: perSend, cpu: cpuPerSend } = await round(SENDS)
    // the statement of storeMessageWithEvents (db/events.ts), explained in a transaction that is rolled back
    const [a, b] = pair()
    const plan = await db.connection().execute(async connection => {
      await sql`begin`.execute(connection)
      const { rows } = await sql<{ 'QUERY PLAN': string }>`explain (analyze, buffers, timing)
        with locked as (
          select id from devices where user_id in (${a}, ${b}) order by id for update
        ), bumped as (
          update devices set event_seq = devices.event_seq + 1 from locked where devices.id = locked.id
          returning devices.id, devices.event_seq
        ), stored as (
          insert into messages (sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, client_msg_id, created_at)
          values (${a}, ${b}, ${Math.min(a, b)}, ${Math.max(a, b)}, ${blob()}, ${blob()}, ${null}, ${Date.now()})
          returning id, created_at
        ), appended as (
          insert into events (device_id, seq, type, payload, message_id, created_at)
          select bumped.id, bumped.event_seq, 'message', ${'{}'}::text, stored.id, ${Date.now()}::bigint from bumped, stored
        )
        select id, created_at from stored`.execute(connection)
      await sql`rollback`.execute(connection)
      return rows.map(row => row['QUERY PLAN'])
    })
    console.log(JSON.stringify({ mode: 'pg', variant: args.variant, group: GROUP, sends: SENDS, us_per_send: Math.round(perSend * 10) / 10, cpu_us_per_send: Math.round(cpuPerSend * 10) / 10 }))
    if (args.plan) console.log(plan.join('\n'))
  } finally {
    await db.destroy()
    await dropSchema(args.url, schema)
  }
}

if (args.mode === 'pg') {
  await runPostgres()
  process.exit(0)
}

const dir = mkdtempSync(join(tmpdir(), 'micro-send-'))
try {
  const file = join(dir, 'db.sqlite')
  const cached = args.cache === undefined ? undefined : join(args.cache, `${variant?.schema === undefined ? 'base' : args.variant}-${USERS}-${HISTORY}.sqlite`)
  if (cached === undefined || !existsSync(cached)) await prepare(file)
  if (cached !== undefined) {
    if (existsSync(cached)) copyFileSync(cached, file)
    else copyFileSync(file, cached)
  }
  const names = Array.from({ length: USERS }, (_, i) => `user${i + 1}`)
  if (args.mode === 'raw') runRaw(file)
  else await runApi(file, names)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
