import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SQLite from 'better-sqlite3'
import { sql } from 'kysely'
import t from 'tap'
import { connect } from '../../db/connect.js'
import { migrateToLatest } from '../../db/migrate.js'
import { createUser } from '../../db/users.js'

// An operator's ANALYZE fills sqlite_stat4 with samples of index keys (usernames among
// them), which outlive the rows they came from and make SQLite plan statements again as
// their arguments change (db/connect.ts): the server empties it when it opens the file,
// and keeps sqlite_stat1.

t.test('opening the database empties sqlite_stat4 and keeps sqlite_stat1', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'cryptachat-stat4-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'chat.db')
  const first = connect({ kind: 'sqlite', file })
  await migrateToLatest(first)
  for (const name of ['erased_alice', 'bob', 'carol']) await createUser(first, name, 'h', 1)
  await sql`analyze`.execute(first)
  await first.deleteFrom('users').where('username', '=', 'erased_alice').execute()
  await first.destroy()

  const count = (table: string): number => {
    const raw = new SQLite(file, { readonly: true })
    try {
      return (raw.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n
    } finally {
      raw.close()
    }
  }
  const samples = (): string => {
    const raw = new SQLite(file, { readonly: true })
    try {
      return (raw.prepare('select sample from sqlite_stat4').all() as Array<{ sample: Buffer }>).map(row => row.sample.toString('latin1')).join('|')
    } finally {
      raw.close()
    }
  }
  t.ok(count('sqlite_stat4') > 0, 'ANALYZE wrote samples')
  t.match(samples(), /erased_alice/, 'a sample keeps the name of a deleted user')
  const stat1 = count('sqlite_stat1')
  t.ok(stat1 > 0)

  const second = connect({ kind: 'sqlite', file })
  t.same(await second.selectFrom('users').select('username').orderBy('username').execute(), [{ username: 'bob' }, { username: 'carol' }], 'the data is as it was')
  await second.destroy()
  t.equal(count('sqlite_stat4'), 0, 'no samples after the server opened the file')
  t.equal(count('sqlite_stat1'), stat1, 'sqlite_stat1 as it was')
})
