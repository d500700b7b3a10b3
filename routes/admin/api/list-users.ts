import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listUsers } from '../../../db/admin.js'
import { isoTimes } from '../../../db/time.js'
import { NO_NUL, adminBearer, errorReplies } from '../../schemas.js'
import { PageQuery, PageReply, UserSummary, auditView } from './schemas.js'

export const ListUsersQuery = Type.Object({
  // NUL is no character of a name, and PostgreSQL refuses it in text (a 500, found by the fuzz run)
  search: Type.Optional(Type.String({ maxLength: 64, pattern: NO_NUL, description: 'part of the name, any case' })),
  ...PageQuery
})

const listUsersRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/users', {
    schema: {
      summary: 'Users by name, optionally those whose name contains `search`',
      tags: ['admin'],
      security: adminBearer,
      querystring: ListUsersQuery,
      response: { 200: PageReply(UserSummary), ...errorReplies(400, 401, 429) }
    }
  }, async (request) => {
    const { search, page, per_page: perPage } = request.query
    const result = await listUsers(fastify.db, search, { page, perPage })
    await auditView(fastify.db, request, 'view-users')
    return { ...result, items: result.items.map(isoTimes) }
  })
}

export default listUsersRoute
