import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, Migrator, SqliteDialect } from 'kysely'
import t, { type Test } from 'tap'
import { migrationProvider } from '../../migrations/index.js'
import { admin, adminJson, adminProcess as cli, tempDir } from '../fixtures/admin.js'
import { befriend, build, call, user } from '../helper.js'
import { listening, startServer, stopProcess } from '../processes.js'

// `backup` and `restore`: a copy taken by the real CLI process while a real server takes
// messages, restored into a new DATA_DIR and served from there; and every refusal, each
// with its message and exit code, changing nothing. SQLite only: the tests pass their own
// DATA_DIR or sqlite: URL whatever DATABASE_URL the run has.

// two server starts and a CLI process from the TypeScript sources: minutes on a loaded machine
t.setTimeout(15 * 60_000)

async function post (base: string, path: string, body: unknown, token?: string): Promise<{ status: number, json: any }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body)
  })
  return { status: res.status, json: await res.json() }
}

async function account (base: string, username: string): Promise<string> {
  await post(base, '/register', { username, password: 'correct horse battery' })
  const res = await post(base, '/login', { username, password: 'correct horse battery' })
  if (res.status !== 200) throw new Error(`login ${username}: ${res.status}`)
  return res.json.token
}

/** Every message of alice's conversation with bob, as alice reads it from the server. */
async function conversation (base: string, token: string): Promise<number[]> {
  const ids: number[] = []
  for (let since = 0; ;) {
    const res = await fetch(`${base}/get_messages?username=bob&since_id=${since}&limit=1000`, { headers: { authorization: `Bearer ${token}` } })
    if (res.status !== 200) throw new Error(`get_messages: ${res.status}`)
    const page = await res.json() as { messages: Array<{ id: number }>, has_more: boolean }
    ids.push(...page.messages.map(m => m.id))
    if (!page.has_more || page.messages.length === 0) return ids
    since = page.messages.at(-1)!.id
  }
}

function hash (file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

t.test('a backup taken under send load holds every message acknowledged before it started; restored, it serves them', async t => {
  const dataDir = tempDir(t)
  const server = startServer({ DATA_DIR: dataDir, RATE_LIMIT: 'off', LOG_LEVEL: 'info', TS_NODE_TRANSPILE_ONLY: '1' })
  t.teardown(async () => { await stopProcess(server.child) })
  const base = await listening(server)
  const alice = await account(base, 'alice')
  const bob = await account(base, 'bob')
  t.equal((await post(base, '/request_chat', { recipient_username: 'bob' }, alice)).status, 201)
  t.equal((await post(base, '/accept_chat', { requester_username: 'alice' }, bob)).status, 200)

  // four senders, each one message after another; bob acknowledges every tenth he receives
  const answered: Array<{ id: number, at: number }> = []
  let acks = 0
  const load = { stop: false }
  const sender = async (from: string, token: string, to: string): Promise<void> => {
    for (let i = 0; !load.stop; i++) {
      const res = await post(base, '/send_message', { recipient_username: to, sender_blob: `s-${from}-${i}-${'x'.repeat(200)}`, recipient_blob: `r-${from}-${i}-${'y'.repeat(200)}` }, token)
      if (res.status !== 201) throw new Error(`send_message: ${res.status} ${JSON.stringify(res.json)}`)
      answered.push({ id: res.json.id, at: performance.now() })
      if (from === 'alice' && i % 10 === 9) {
        if ((await post(base, '/ack_messages', { up_to_id: res.json.id }, bob)).status === 200) acks++
      }
    }
  }
  const senders = [sender('alice', alice, 'bob'), sender('alice', alice, 'bob'), sender('bob', bob, 'alice'), sender('bob', bob, 'alice')]
  while (answered.length < 300) await new Promise(resolve => setTimeout(resolve, 20))

  const backupFile = join(tempDir(t), 'copy.db')
  const started = performance.now()
  const backup = await cli({ DATA_DIR: dataDir }, 'backup', backupFile, '--json')
  const finished = performance.now()
  const duringBackup = answered.filter(a => a.at > started && a.at < finished).length
  while (answered.filter(a => a.at > finished).length < 50) await new Promise(resolve => setTimeout(resolve, 20))
  load.stop = true
  await Promise.all(senders)

  t.equal(backup.code, 0, backup.stderr)
  const before = answered.filter(a => a.at < started).map(a => a.id)
  const summary = JSON.parse(backup.stdout)
  t.match(summary, { file: backupFile, integrity: 'ok', users: 2, unknown_migrations: [], pending_migrations: [] })
  t.ok(summary.messages >= before.length, `the copy counts ${summary.messages} messages, ${before.length} were acknowledged before it started`)
  t.ok(summary.messages < answered.length, 'and not those sent after it')
  t.equal(statSync(backupFile).mode & 0o777, 0o600, 'owner-only')
  t.notOk(existsSync(`${backupFile}-wal`) || existsSync(`${backupFile}-shm`) || existsSync(`${backupFile}-journal`), 'one self-contained file')
  t.notMatch(backup.stdout + backup.stderr, /alice|bob/, 'no username in the output')
  t.ok(acks > 0, 'bob acknowledged messages meanwhile')
  t.comment(`${before.length} messages answered 201 before the backup process started, ${duringBackup} while it ran (${Math.round(finished - started)} ms, the CLI's start included), ` +
    `${summary.messages} in the copy, ${answered.length} in all`)

  // (in-process from here: each CLI process costs a TypeScript start, minutes on a loaded machine)
  const checked = await admin({}, 'restore', backupFile, '--check')
  t.equal(checked.code, 0, checked.err)
  t.match(checked.out, /is a CryptaChat backup this version can restore\nsize .*\nintegrity +ok\n/)

  // into a new DATA_DIR, and a server on it
  const restoredDir = join(tempDir(t), 'data')
  const restored = await admin({ DATA_DIR: restoredDir }, 'restore', backupFile)
  t.equal(restored.code, 0, restored.err)
  t.match(restored.out, /^restored .* into .*cryptachat\.db\n/)
  t.match(restored.err, /warning: accounts and messages erased after this backup was made are back/)
  t.equal(statSync(join(restoredDir, 'cryptachat.db')).mode & 0o777, 0o600)
  t.equal(statSync(restoredDir).mode & 0o777, 0o700)
  const second = startServer({ DATA_DIR: restoredDir, RATE_LIMIT: 'off', LOG_LEVEL: 'info', TS_NODE_TRANSPILE_ONLY: '1' })
  t.teardown(async () => { await stopProcess(second.child) })
  const secondBase = await listening(second)
  const held = new Set(await conversation(secondBase, await account(secondBase, 'alice')))
  const lost = before.filter(id => !held.has(id))
  t.same(lost, [], 'every message answered 201 before the backup started is served from the restored copy')
  t.equal(held.size, summary.messages)
  // a snapshot, not a torn copy: SQLite has one writer, so a message is committed after every smaller id
  const newest = Math.max(...held)
  t.same(answered.filter(a => a.id <= newest && !held.has(a.id)).map(a => a.id), [], 'every message answered with an id up to the newest in the copy is in it')
  await stopProcess(second.child)
  const check = new SQLite(join(restoredDir, 'cryptachat.db'), { readonly: true })
  t.equal(check.pragma('integrity_check', { simple: true }), 'ok')
  check.close()
})

/** A SQLite database file of the test's own, with an app serving it (as a running server would). */
async function served (t: Test, messages = 3) {
  const dir = tempDir(t)
  const env = { DATABASE_URL: `sqlite:${join(dir, 'cryptachat.db')}` }
  const app = await build(t, env)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  for (let i = 0; i < messages; i++) {
    await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 'S'.repeat(2000), recipient_blob: 'R'.repeat(2000) } })
  }
  return { dir, env, app, alice, file: join(dir, 'cryptachat.db') }
}

t.test('backup: bad usage and targets are refused, nothing is written', async t => {
  const { dir, env } = await served(t)
  const missing = await admin(env, 'backup')
  t.same([missing.code, missing.err], [2, 'error: backup takes exactly one argument\nusage: npm run admin -- backup FILE [--force] [--json]'])

  const target = join(dir, 'copy.db')
  writeFileSync(target, 'precious')
  const exists = await admin(env, 'backup', target)
  t.same([exists.code, exists.err], [1, `error: ${target} exists; run again with --force to replace it`])
  t.equal(readFileSync(target, 'utf8'), 'precious', 'left as it was')
  const forced = await adminJson(env, 'backup', target, '--force')
  t.match(forced, { users: 2, messages: 3, integrity: 'ok' })
  t.equal(statSync(target).mode & 0o777, 0o600)

  const noDir = await admin(env, 'backup', join(dir, 'nowhere', 'copy.db'))
  t.same([noDir.code, noDir.err], [1, `error: the directory ${join(dir, 'nowhere')} does not exist`])
  t.notOk(existsSync(join(dir, 'nowhere')))

  const itself = await admin(env, 'backup', join(dir, 'cryptachat.db'), '--force')
  t.equal(itself.code, 1)
  t.match(itself.err, /is the database itself/)

  const wal = await admin(env, 'backup', join(dir, 'cryptachat.db-wal'), '--force')
  t.equal(wal.code, 1)

  const noDb = await admin({ DATA_DIR: join(dir, 'empty') }, 'backup', join(dir, 'other.db'))
  t.same([noDb.code, noDb.err], [1, `error: no database at ${join(dir, 'empty')}/cryptachat.db (DATA_DIR or DATABASE_URL)`])
  t.notOk(existsSync(join(dir, 'empty')), 'no database created to back up')

  const memory = await admin({ DATABASE_URL: 'sqlite::memory:' }, 'backup', join(dir, 'other.db'))
  t.equal(memory.code, 1)
  t.match(memory.err, /in memory/)

  const pg = await admin({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nothing' }, 'backup', join(dir, 'other.db'))
  t.same([pg.code, pg.err], [1, 'error: backup works on a SQLite database; on PostgreSQL use pg_dump -Fc and pg_restore (docs/admin.md, "Backups")'])
  t.notOk(existsSync(join(dir, 'other.db')))
  t.same((await admin(env, 'backup', target, '--force')).code, 0, 'text output too')
  const text = await admin(env, 'backup', join(dir, 'text.db'))
  t.match(text.out, /^backup written to .*text\.db \(mode 600\)\nsize +[0-9.]+ (B|KiB)\nintegrity +ok\nmigration +\S+ \(\d+ applied\)\nusers +2\nmessages +3\n/)
})

t.test('restore: every file that is not a backup this version can restore is refused, nothing changed', async t => {
  const { dir, env, app } = await served(t, 60)
  const backup = join(tempDir(t), 'good.db')
  await adminJson(env, 'backup', backup)
  await app.close()
  const targetDir = tempDir(t)
  const target = join(targetDir, 'cryptachat.db')
  const into = { DATA_DIR: targetDir }

  const refused = async (file: string, code: number, message: RegExp, args: string[] = []): Promise<void> => {
    for (const check of [['--check'], []]) {
      const res = await admin(into, 'restore', file, ...check, ...args)
      t.equal(res.code, code, `${file} ${check.join(' ')}: ${res.err}`)
      t.match(res.err, message)
      t.equal(res.out, '')
      t.notOk(existsSync(target), 'no database created')
    }
  }

  const text = join(dir, 'notes.txt')
  writeFileSync(text, 'not a database at all, but long enough to have a header-sized start\n'.repeat(3))
  await refused(text, 65, new RegExp(`^error: ${text} is not a SQLite database$`))
  writeFileSync(join(dir, 'empty.db'), '')
  await refused(join(dir, 'empty.db'), 65, /is not a SQLite database$/)
  await refused(join(dir, 'absent.db'), 1, /^error: no file at .*absent\.db$/)

  const other = join(dir, 'other.db')
  const sqlite = new SQLite(other)
  sqlite.exec('create table notes (body text)')
  sqlite.close()
  await refused(other, 65, /is a SQLite database but not a CryptaChat one \(no kysely_migration, users, messages table\)$/)

  const future = join(dir, 'future.db')
  writeFileSync(future, readFileSync(backup))
  const newer = new SQLite(future)
  newer.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('2099-01-01-0001-teleport', new Date().toISOString())
  newer.close()
  const futureHash = hash(future)
  await refused(future, 65, /future\.db comes from a newer CryptaChat: its migration 2099-01-01-0001-teleport is unknown to this version/)
  t.equal(hash(future), futureHash, 'the backup itself is never written')

  const truncated = join(dir, 'truncated.db')
  writeFileSync(truncated, readFileSync(backup))
  truncateSync(truncated, Math.floor(statSync(backup).size * 0.6))
  await refused(truncated, 65, /truncated\.db is damaged: /)

  writeFileSync(join(dir, 'walled.db'), readFileSync(backup))
  writeFileSync(join(dir, 'walled.db-wal'), 'frames')
  await refused(join(dir, 'walled.db'), 65, /walled\.db-wal lies beside .*: it is not a self-contained backup/)

  t.same([(await admin(into, 'restore')).code, (await admin(into, 'restore', 'a', 'b')).code], [2, 2])
  const pg = await admin({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nothing' }, 'restore', backup)
  t.same([pg.code, pg.err], [1, 'error: restore works on a SQLite database; on PostgreSQL use pg_dump -Fc and pg_restore (docs/admin.md, "Backups")'])
  t.same(readFileSync(join(dir, 'walled.db')), readFileSync(backup))
  t.same(readdirSync(targetDir), [], 'no temporary file left behind')
})

t.test('restore over a database: refused while a server holds it or without --force; with it, replaced whole, and the erasures it undoes named', async t => {
  const current = await served(t, 2)
  const backup = join(tempDir(t), 'two.db')
  await adminJson(current.env, 'backup', backup)
  const bob = await adminJson(current.env, 'user', 'bob')
  t.equal((await admin(current.env, 'delete-user', 'bob', '--yes')).code, 0, 'bob erased after the backup')

  const before = hash(current.file)
  const unforced = await admin(current.env, 'restore', backup)
  t.equal(unforced.code, 1)
  t.match(unforced.err, /^error: a database exists at .*cryptachat\.db; a restore replaces everything in it: stop the server, back it up if you may need it, and run again with --force$/)
  const busy = await admin(current.env, 'restore', backup, '--force')
  t.same([busy.code, busy.err], [1, `error: ${current.file} is in use (a running server?): stop every server on it and run again; nothing was changed`])
  t.equal(hash(current.file), before, 'the database is as it was')
  t.equal((await call(current.app, current.alice.token, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'and the server still serves it')

  await current.app.close()
  t.match(await adminJson(current.env, 'stats'), { users: 1, messages: 0 })
  const done = await admin(current.env, 'restore', backup, '--force', '--json')
  t.equal(done.code, 0, done.err)
  t.match(JSON.parse(done.out), { replaced: true, users: 2, messages: 2, migrated: [], users_not_in_replaced: [bob.id] })
  t.match(done.err, new RegExp(`warning: 1 accounts of the backup were not in the database it replaced \\(erased since the backup was made\\?\\), ids ${bob.id as number}: 'users' shows their names`))
  t.same(readdirSync(current.dir), ['cryptachat.db'], 'no -wal, -shm or temporary file beside it')
  t.match(await adminJson(current.env, 'stats'), { users: 2, messages: 2 }, 'the backup\'s content, bob back')
})

t.test('restore of an older backup applies the migrations it lacks', async t => {
  const dir = tempDir(t)
  const old = join(dir, 'old.db')
  const names = Object.keys(await migrationProvider.getMigrations()).sort()
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SQLite(old) }) })
  const { error } = await new Migrator({ db, provider: migrationProvider }).migrateTo(names.at(-2)!)
  t.equal(error, undefined)
  await db.destroy()

  const checked = await adminJson({}, 'restore', old, '--check')
  t.same(checked.pending_migrations, [names.at(-1)])
  const into = { DATA_DIR: join(dir, 'data') }
  const done = await admin(into, 'restore', old)
  t.equal(done.code, 0, done.err)
  t.match(done.out, new RegExp(`migrated +${names.at(-1)!}`))
  t.match(await adminJson(into, 'stats'), { users: 0, messages: 0 })
})
