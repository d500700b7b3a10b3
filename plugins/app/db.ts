import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { connect } from '../../db/connect.js'
import { migrateToLatest } from '../../db/migrate.js'
import type { Database } from '../../db/schema.js'

export default fp(async function dbPlugin (fastify) {
  const { database, env } = fastify.config
  // under test every precompiled query is also built as written and compared (db/perf)
  const db = connect(database, { checkPrecompiled: env === 'test' })
  fastify.decorate('db', db)
  fastify.addHook('onClose', async () => { await db.destroy() })
  // Migrations run at start, so a fresh clone or a fresh volume just works.
  const applied = await migrateToLatest(db)
  for (const migration of applied) fastify.log.info({ migration: migration.migrationName }, 'migration applied')
}, { name: 'db', dependencies: ['config'] })

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
  }
}
