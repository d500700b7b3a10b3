import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
import { DatabaseUnavailable } from '../../errors.js'
import { errorReplies } from '../schemas.js'

const Status = Type.Object({ status: Type.String() })

const health: FastifyPluginAsyncTypebox = async (fastify) => {
  // probes are frequent: log them only at warn and above (or quieter, if so configured)
  const logLevel = ['error', 'fatal', 'silent'].includes(fastify.config.logLevel) ? fastify.config.logLevel : 'warn'
  fastify.get('/healthz', {
    schema: { summary: 'Liveness: the process is up', tags: ['health'], response: { 200: Status } },
    logLevel
  }, async () => ({ status: 'ok' }))

  fastify.get('/readyz', {
    schema: { summary: 'Readiness: the database answers', tags: ['health'], response: { 200: Status, ...errorReplies(503) } },
    logLevel
  }, async (request) => {
    try {
      await sql`select 1`.execute(fastify.db)
      return { status: 'ready' }
    } catch (error) {
      // an expected answer of this probe, not a server fault: a warning, and the code says why
      request.log.warn({ err: error }, 'database not reachable')
      throw new DatabaseUnavailable()
    }
  })
}

export default health
