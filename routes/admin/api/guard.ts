import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { recordAudit } from '../../../db/admin.js'
import { AdminUnauthorized, RateLimited } from '../../../errors.js'
import { sourceKey } from '../../../plugins/app/source-key.js'
import { consoleActor } from './schemas.js'

const BEARER = /^Bearer +(\S+) *$/

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

// The admin token's check. A wrong or missing token is written to the audit log (who:
// `console:<address>`, what: the route, never the token sent) and counted per address (an
// IPv6 /64 as one): past RATE_LIMIT_ADMIN_FAILURES the address gets 429 for the rest of the
// window, the right token included, so that guessing stops there. The refusals write one
// audit row per address and window, not one per attempt: the log of a long attack stays
// short. The counts are @fastify/rate-limit's (in Redis with REDIS_URL, shared by instances).

/** The onRequest hook that lets in `Authorization: Bearer <token>` only, compared in constant time. */
export function adminGuard (fastify: FastifyInstance, token: string): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const expected = digest(token)
  const { enabled, adminFailures: setting } = fastify.config.rateLimit
  const keyOf = (prefix: string) => (request: FastifyRequest): string => `${prefix}:${fastify.limitKey(sourceKey(request.ip))}`
  const failures = fastify.createRateLimit({ ...setting, keyGenerator: keyOf('admin-failures') })
  const refusals = fastify.createRateLimit({ max: 1, timeWindow: setting.timeWindow, keyGenerator: keyOf('admin-refused') })
  const audit = async (request: FastifyRequest, action: string, detail: string): Promise<void> =>
    await recordAudit(fastify.db, { actor: consoleActor(request), action, target: null, detail })

  return async function checkAdminToken (request, reply) {
    const route = `${request.method} ${request.routeOptions.url ?? '(none)'}`
    if (enabled) {
      const status = await failures(request, { increment: false })
      if (!status.isAllowed && status.remaining === 0) {
        // the first refusal of the window is written down, the others only counted
        const first = await refusals(request)
        if (!first.isAllowed && !first.isExceeded) await audit(request, 'admin-token-refused', `${route}; further attempts from this address refused for ${status.ttlInSeconds} s`)
        reply.header('retry-after', status.ttlInSeconds)
        fastify.metrics.refused(request, 'admin-failures')
        throw new RateLimited(`${status.ttlInSeconds} seconds`)
      }
    }
    const given = BEARER.exec(request.headers.authorization ?? '')?.[1]
    // comparing digests keeps the time independent of where, or whether, the lengths differ
    const matches = timingSafeEqual(digest(given ?? ''), expected)
    if (given === undefined || !matches) {
      await audit(request, 'admin-token-failed', given === undefined ? `${route}; no token` : `${route}; wrong token`)
      if (enabled) await failures(request)
      reply.header('www-authenticate', 'Bearer realm="admin"')
      throw new AdminUnauthorized()
    }
    reply.header('cache-control', 'no-store')
  }
}
