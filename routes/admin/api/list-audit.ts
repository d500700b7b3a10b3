import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listAudit } from '../../../db/admin.js'
import { isoTimes } from '../../../db/time.js'
import { Timestamp, adminBearer, errorReplies } from '../../schemas.js'
import { PageQuery, PageReply, auditView } from './schemas.js'

export const AuditEntry = Type.Object({
  id: Type.Integer(),
  created_at: Timestamp,
  actor: Type.String({ description: "'cli:<os user>' or 'console:<ip>'" }),
  action: Type.String({ description: 'disable-user, enable-user, delete-user, import; view-users, view-user, view-requests, view-messages, view-audit (a console view: what was asked, never what it showed); admin-token-failed, admin-token-refused (a wrong or missing admin token; the first refusal of an address past RATE_LIMIT_ADMIN_FAILURES)' }),
  target: Type.Union([Type.String(), Type.Null()]),
  detail: Type.Union([Type.String(), Type.Null()])
})

const listAuditRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/audit', {
    schema: {
      summary: 'What operators did, from the CLI or this console, newest first',
      tags: ['admin'],
      security: adminBearer,
      querystring: Type.Object(PageQuery),
      response: { 200: PageReply(AuditEntry), ...errorReplies(400, 401, 429) }
    }
  }, async (request) => {
    const { page, per_page: perPage } = request.query
    const result = await listAudit(fastify.db, { page, perPage })
    await auditView(fastify.db, request, 'view-audit')
    return { ...result, items: result.items.map(isoTimes) }
  })
}

export default listAuditRoute
