import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { getUserDetail } from '../../../db/admin.js'
import { isoTimes } from '../../../db/time.js'
import { UserNotFound } from '../../../errors.js'
import { adminBearer, errorReplies } from '../../schemas.js'
import { UserDetail, UserParams, auditView } from './schemas.js'

const getUserRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/users/:username', {
    schema: {
      summary: 'One user: key fingerprint, contacts, request and message counts (never a key, blob or hash)',
      tags: ['admin'],
      security: adminBearer,
      params: UserParams,
      response: { 200: UserDetail, ...errorReplies(400, 401, 404, 429) }
    }
  }, async (request) => {
    const detail = await getUserDetail(fastify.db, request.params.username)
    if (detail === undefined) throw new UserNotFound(request.params.username)
    await auditView(fastify.db, request, 'view-user', detail.username)
    return isoTimes(detail)
  })
}

export default getUserRoute
