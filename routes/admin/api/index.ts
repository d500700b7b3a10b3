import type { FastifyPluginAsync } from 'fastify'
import deleteUser from './delete-user.js'
import getStats from './get-stats.js'
import getUser from './get-user.js'
import { adminGuard } from './guard.js'
import listAudit from './list-audit.js'
import listMessages from './list-messages.js'
import listRequests from './list-requests.js'
import listUsers from './list-users.js'
import setUserDisabled from './set-user-disabled.js'

/** Every route in here needs `Authorization: Bearer <ADMIN_TOKEN>` (guard.ts); the read-only views are audited too. */
const api: FastifyPluginAsync<{ token: string }> = async (fastify, opts) => {
  fastify.addHook('onRequest', adminGuard(fastify, opts.token))
  await fastify.register(getStats)
  await fastify.register(listUsers)
  await fastify.register(getUser)
  await fastify.register(setUserDisabled)
  await fastify.register(deleteUser)
  await fastify.register(listRequests)
  await fastify.register(listMessages)
  await fastify.register(listAudit)
}

export default api
