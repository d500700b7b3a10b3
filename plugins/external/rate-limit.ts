import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import type { Config, RateLimitSetting } from '../../config.js'
import { RateLimited } from '../../errors.js'

type LimitName = Exclude<keyof Config['rateLimit'], 'enabled'>

// Per-IP limits, opted into route by route through `config.rateLimit`. With REDIS_URL
// the counters live in Redis and are shared by every instance.

export default fp(async function rateLimitPlugin (fastify) {
  const { config } = fastify
  let redis: Redis | undefined
  if (config.redisUrl !== undefined) {
    redis = new Redis(config.redisUrl, { connectTimeout: 1000, maxRetriesPerRequest: 1, enableOfflineQueue: true })
    fastify.addHook('onClose', async () => { await redis?.quit() })
  }
  await fastify.register(rateLimit, {
    global: false,
    nameSpace: `${config.redisPrefix}rl:`,
    // the plugin's own error has no code: ours, in the plugin's words ("retry in 1 minute")
    errorResponseBuilder: (_request, context) => new RateLimited(context.after),
    ...(redis === undefined ? {} : { redis, skipOnError: true })
  })
  fastify.decorate('routeRateLimit', (name: LimitName): RateLimitSetting | false =>
    config.rateLimit.enabled ? config.rateLimit[name] : false)
}, { name: 'rate-limit', dependencies: ['config'] })

declare module 'fastify' {
  interface FastifyInstance {
    /** The `config.rateLimit` of a limited route: its setting, or false when RATE_LIMIT=off. */
    routeRateLimit: (name: LimitName) => RateLimitSetting | false
  }
}
