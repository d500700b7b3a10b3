import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
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
  }, async (request, reply) => {
    try {
      await sql`select 1`.execute(fastify.db)
      return { status: 'ready' }
    } catch (error) {
      request.log.warn({ err: error }, 'database not reachable')
      return await reply.status(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'Database not reachable.', code: 'DATABASE_UNAVAILABLE' })
    }
  })
}

export default health
