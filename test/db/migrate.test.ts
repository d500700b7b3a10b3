import t from 'tap'
import { connect } from '../../db/connect.js'
import { migrateToLatest } from '../../db/migrate.js'
import { freshDatabaseEnv, postgresUrl } from '../helper.js'

// Kysely's migrator, left alone, finds its bookkeeping tables in any schema of the
// database; a server in a fresh schema beside a migrated one must still migrate its own.

t.test('a fresh schema migrates while another schema of the database is migrated', async t => {
  if (postgresUrl === undefined) {
    t.pass('schemas are a PostgreSQL matter; SQLite has one database per file')
    return
  }
  const databases = []
  for (let i = 0; i < 2; i++) {
    const env = await freshDatabaseEnv(t)
    const db = connect({ kind: 'postgres', url: postgresUrl, schema: env.DATABASE_SCHEMA })
    t.teardown(async () => { await db.destroy() })
    databases.push(db)
  }
  for (const db of databases) {
    const applied = await migrateToLatest(db)
    t.ok(applied.length > 0 && applied.every(m => m.status === 'Success'), 'every migration applied in its own schema')
    t.equal((await db.selectFrom('users').select('id').execute()).length, 0, 'its tables exist')
  }
  t.same(await migrateToLatest(databases[0]!), [], 'and a second run applies nothing')
})
