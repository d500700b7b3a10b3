import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import { AdminUnauthorized } from '../../../errors.js'
import deleteUser from './delete-user.js'
import getStats from './get-stats.js'
import getUser from './get-user.js'
import listAudit from './list-audit.js'
import listMessages from './list-messages.js'
import listRequests from './list-requests.js'
import listUsers from './list-users.js'
import setUserDisabled from './set-user-disabled.js'

const BEARER = /^Bearer +(\S+) *$/

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** Every route in here needs `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. */
const api: FastifyPluginAsync<{ token: string }> = async (fastify, opts) => {
  const expected = digest(opts.token)
  fastify.addHook('onRequest', async (request, reply) => {
    const given = BEARER.exec(request.headers.authorization ?? '')?.[1]
    // comparing digests keeps the time independent of where, or whether, the lengths differ
    const matches = timingSafeEqual(digest(given ?? ''), expected)
    if (given === undefined || !matches) {
      reply.header('www-authenticate', 'Bearer realm="admin"')
      throw new AdminUnauthorized()
    }
    reply.header('cache-control', 'no-store')
  })
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
