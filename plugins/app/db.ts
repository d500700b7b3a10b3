import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { connect } from '../../db/connect.js'
import { migrateToLatest } from '../../db/migrate.js'
import type { Database } from '../../db/schema.js'

export default fp(async function dbPlugin (fastify) {
  const { database } = fastify.config
  const { db, kind } = connect(database)
  fastify.decorate('db', db)
  fastify.decorate('dbKind', kind)
  fastify.addHook('onClose', async () => { await db.destroy() })
  // Migrations run at start, so a fresh clone or a fresh volume just works.
  const applied = await migrateToLatest(db)
  for (const migration of applied) fastify.log.info({ migration: migration.migrationName }, 'migration applied')
}, { name: 'db', dependencies: ['config'] })

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    dbKind: 'sqlite' | 'postgres'
  }
}
