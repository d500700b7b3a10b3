import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { getStats } from '../../../db/admin.js'
import { adminBearer, errorReplies } from '../../schemas.js'

export const StatsQuery = Type.Object({ days: Type.Integer({ minimum: 1, maximum: 366, default: 14 }) })
export const StatsReply = Type.Object({
  users: Type.Integer(),
  disabled_users: Type.Integer(),
  public_keys: Type.Integer(),
  contacts: Type.Integer({ description: 'accepted pairs' }),
  pending_requests: Type.Integer(),
  messages: Type.Integer(),
  database_bytes: Type.Integer(),
  messages_per_day: Type.Array(Type.Object({ day: Type.String({ description: 'YYYY-MM-DD (UTC)' }), messages: Type.Integer() }))
})

const getStatsRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/stats', {
    schema: {
      summary: 'Counts, database size and messages per day',
      tags: ['admin'],
      security: adminBearer,
      querystring: StatsQuery,
      response: { 200: StatsReply, ...errorReplies(400, 401, 429) }
    }
  }, async (request) => await getStats(fastify.db, request.query.days))
}

export default getStatsRoute
