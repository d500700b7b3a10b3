import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
import { DatabaseUnavailable } from '../../errors.js'
import { errorReplies, noToken } from '../schemas.js'

const Status = Type.Object({ status: Type.String() })
const Readiness = Type.Object({
  status: Type.Literal('ready'),
  hub: Type.Union([Type.Literal('local'), Type.Literal('connected'), Type.Literal('degraded')], {
    description: 'how pushes reach sockets: `local` (one instance, no REDIS_URL), `connected` (through Redis), ' +
      '`degraded` (Redis unreachable: sockets and long-polls read the database every second; still ready, since the database is the truth)'
  })
})

const health: FastifyPluginAsyncTypebox = async (fastify) => {
  // probes are frequent: log them only at warn and above (or quieter, if so configured)
  const logLevel = ['error', 'fatal', 'silent'].includes(fastify.config.logLevel) ? fastify.config.logLevel : 'warn'
  fastify.get('/healthz', {
    schema: { summary: 'Liveness: the process is up', tags: ['health'], security: noToken, response: { 200: Status } },
    logLevel
  }, async () => ({ status: 'ok' }))

  fastify.get('/readyz', {
    schema: { summary: 'Readiness: the database answers (and how pushes travel)', tags: ['health'], security: noToken, response: { 200: Readiness, ...errorReplies(503) } },
    logLevel
  }, async (request) => {
    try {
      await sql`select 1`.execute(fastify.db)
      return { status: 'ready' as const, hub: fastify.hub.state }
    } catch (error) {
      // an expected answer of this probe, not a server fault: a warning, and the code says why
      request.log.warn({ err: error }, 'database not reachable')
      throw new DatabaseUnavailable()
    }
  })
}

export default health
