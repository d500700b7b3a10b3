import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listRequests } from '../../../db/admin.js'
import { isoTimes } from '../../../db/time.js'
import { Timestamp, adminBearer, errorReplies } from '../../schemas.js'
import { PageQuery, PageReply, Username, auditView, filterUserId } from './schemas.js'

export const ListRequestsQuery = Type.Object({
  status: Type.Union([Type.Literal('pending'), Type.Literal('accepted'), Type.Literal('all')], { default: 'pending' }),
  user: Type.Optional(Username),
  ...PageQuery
})

export const RequestRow = Type.Object({
  id: Type.Integer(),
  requester: Type.String(),
  requested: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('accepted')]),
  created_at: Timestamp,
  updated_at: Timestamp
})

const listRequestsRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/requests', {
    schema: {
      summary: 'Chat requests (pending by default), newest first; accepted ones are contacts',
      tags: ['admin'],
      security: adminBearer,
      querystring: ListRequestsQuery,
      response: { 200: PageReply(RequestRow), ...errorReplies(400, 401, 404, 429) }
    }
  }, async (request) => {
    const { status, user, page, per_page: perPage } = request.query
    const userId = await filterUserId(fastify.db, user)
    const result = await listRequests(fastify.db, { status, userId }, { page, perPage })
    await auditView(fastify.db, request, 'view-requests', user ?? null)
    return { ...result, items: result.items.map(isoTimes) }
  })
}

export default listRequestsRoute
