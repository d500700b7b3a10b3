import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { connect } from '../../db/connect.js'
import { migrateToLatest } from '../../db/migrate.js'

// The database holds password hashes: its folder is created 0700 and its files 0600, even
// under a umask that would leave them open to everyone.

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'cryptachat-files-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8)

async function openAndWrite (t: Test, file: string): Promise<void> {
  const db = connect({ kind: 'sqlite', file })
  await migrateToLatest(db)
  await db.insertInto('users').values({ username: 'alice', username_key: 'alice', password_hash: 'h', created_at: 0 }).execute()
  t.equal(mode(`${file}-wal`), '600', 'the WAL, as SQLite creates it')
  t.equal(mode(`${file}-shm`), '600', 'the shared-memory index, as SQLite creates it')
  await db.destroy()
}

t.test('a new data folder is 0700 and the database, its WAL and its -shm 0600, under umask 000', async t => {
  const previous = process.umask(0)
  t.teardown(() => { process.umask(previous) })
  const dir = join(tempDir(t), 'data', 'nested')
  const file = join(dir, 'cryptachat.db')
  await openAndWrite(t, file)
  t.equal(mode(dir), '700')
  t.equal(mode(join(dir, '..')), '700', 'parents it had to create too')
  t.equal(mode(file), '600')
})

t.test('an existing folder is left as it is; existing database files are narrowed to 0600', async t => {
  const dir = join(tempDir(t), 'data')
  mkdirSync(dir)
  chmodSync(dir, 0o755)
  const file = join(dir, 'cryptachat.db')
  // an older version's files, as it left them (world-readable)
  const db = connect({ kind: 'sqlite', file })
  await migrateToLatest(db)
  await db.destroy()
  chmodSync(file, 0o644)
  writeFileSync(`${file}-wal`, '')
  chmodSync(`${file}-wal`, 0o644)
  await openAndWrite(t, file)
  t.equal(mode(file), '600')
  t.equal(mode(dir), '755', 'the folder may be a mount point or shared on purpose: the operator\'s to set')
})
