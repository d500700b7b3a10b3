import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import type { Config, RateLimitSetting } from '../../config.js'
import { RateLimited } from '../../errors.js'
import { sourceKey } from '../app/source-key.js'
import { developmentSecret } from './jwt.js'

type LimitName = Exclude<keyof Config['rateLimit'], 'enabled' | 'connections'>

// Per-IP limits, opted into route by route through `config.rateLimit`, and the per-account
// ones built on `createRateLimit` (account-limits.ts). With REDIS_URL every counter lives in
// Redis, so all instances share one budget and a restart resets nothing; while Redis is
// unreachable the limits are not enforced (fail open, `skipOnError`) rather than failing
// every limited request.
//
// A counter's name never holds what it counts: addresses, usernames and pairs of usernames
// (who writes to whom) are named by a keyed hash (`limitKey`), so that Redis, its dumps and
// its MONITOR show how many, never of whom. The key comes from JWT_SECRET, which every
// instance of one service shares (or, without it, the development secret of the data folder).

export default fp(async function rateLimitPlugin (fastify) {
  const { config } = fastify
  // with RATE_LIMIT=off nothing is counted: no connection
  const redis = config.redisUrl === undefined || !config.rateLimit.enabled ? undefined : await counters(fastify, config.redisUrl)
  const pepper = createHmac('sha256', config.jwtSecret ?? developmentSecret(config.dataDir, config.env === 'test')).update('cryptachat rate-limit counter names').digest()
  const limitKey = (text: string): string => createHmac('sha256', pepper).update(text).digest('base64url').slice(0, 22)
  fastify.decorate('limitKey', limitKey)
  fastify.decorate('limitRedis', redis)
  await fastify.register(rateLimit, {
    global: false,
    // REDIS_PREFIX keeps services sharing one Redis apart (the same on all instances of one)
    nameSpace: `${config.redisPrefix}rl:`,
    // the plugin's own error has no code: ours, in the plugin's words ("retry in 1 minute")
    errorResponseBuilder: (request, context) => {
      fastify.metrics.refused(request, 'address')
      return new RateLimited(context.after)
    },
    // per address (an IPv6 /64 as one), under a name that does not say which
    keyGenerator: request => limitKey(sourceKey(request.ip)),
    ...(redis === undefined ? {} : { redis, skipOnError: true })
  })
  fastify.decorate('routeRateLimit', (name: LimitName): RateLimitSetting | false =>
    config.rateLimit.enabled ? config.rateLimit[name] : false)
}, { name: 'rate-limit', dependencies: ['config'] })

// A limit check is one Lua script of a few microseconds: while Redis does not answer, a
// limited request goes through unlimited at once rather than wait for it.
// - enableOfflineQueue false: a command while disconnected fails at once (ioredis's default
//   queues it until a reconnection, i.e. seconds per request during an outage);
// - maxRetriesPerRequest 0: a command in flight when the connection drops fails then, not
//   after the next reconnection attempt;
// - commandTimeout: a Redis that keeps the connection open but does not answer (a stopped
//   process, a network black hole) fails a command after half a second, and then the
//   connection is dropped (below), so that only the requests already waiting pay for it;
// - connectTimeout: a (re)connection to an unreachable host gives up after a second (10 s by
//   default); ioredis keeps trying, every 2 s at most.
const CLIENT = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, connectTimeout: 1000 }

/** ioredis's client, which takes a command that timed out for an outage. */
class CounterClient extends Redis {
  override sendCommand (...args: Parameters<Redis['sendCommand']>): unknown {
    // destroyed, not ended (disconnect() waits for the peer that does not answer): the client
    // reconnects, and until it is ready the next commands fail at once
    args[0].promise.catch((error: unknown) => {
      if (error instanceof Error && error.message === 'Command timed out' && this.status === 'ready') this.stream.destroy()
    })
    return super.sendCommand(...args)
  }
}

/** The client of the shared counters, connected (or not: then limits start open, and are enforced once it connects). */
async function counters (fastify: FastifyInstance, url: string): Promise<Redis> {
  const redis = new CounterClient(url, CLIENT)
  // one warning per outage (ioredis reports every failed reconnection), one line when it ends
  let down = false
  let closing = false
  const lost = (error?: Error): void => {
    if (down || closing) return
    down = true
    fastify.log.warn({ err: error }, 'rate limits: Redis is unreachable; limits are not enforced until it is back')
  }
  redis.on('error', lost)
  redis.on('close', () => { lost() })
  redis.on('ready', () => {
    if (down) fastify.log.info('rate limits: Redis is back; limits are enforced again')
    down = false
  })
  fastify.addHook('onClose', async () => {
    closing = true
    // quit() lets the commands in flight finish; while disconnected it would be refused (no
    // offline queue) and leave ioredis reconnecting, which keeps the process alive
    if (redis.status === 'ready') await redis.quit().catch(() => { redis.disconnect() })
    else redis.disconnect()
  })
  // without the offline queue the first requests would go unlimited until the connection is ready
  await once(redis, 'ready', { signal: AbortSignal.timeout(2 * CLIENT.connectTimeout) }).catch(() => {})
  return redis
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The `config.rateLimit` of a limited route: its setting, or false when RATE_LIMIT=off. */
    routeRateLimit: (name: LimitName) => RateLimitSetting | false
    /** The name of a counter of `text` (an address, a username, a pair): a keyed hash, 128 bits. */
    limitKey: (text: string) => string
    /** The connection of the shared counters (REDIS_URL, limits on), for limits of another shape than the plugin's windows; fails fast while Redis is down. */
    limitRedis: Redis | undefined
  }
}
