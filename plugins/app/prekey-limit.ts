import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { usernameKey } from '../../db/users.js'
import { AccountRateLimited } from '../../errors.js'

// Prekey bundle fetches per (requesting account, target device), so that nobody drains
// another's one-time keys: a leaky bucket as Signal-Server's (RATE_LIMIT_PREKEYS, 6/10m: six
// at once, then one every ten minutes), not a window, which would hand out a burst every
// window. Kept as GCRA: one number per pair, the time at which its bucket is empty again
// ("tat"); a fetch is allowed while that is at most (burst - 1) intervals ahead, and moves it
// one interval on. With REDIS_URL the number lives in Redis (one Lua script, Redis's clock),
// shared by every instance, and while Redis is unreachable fetches are let through, as the
// other limits do; otherwise in memory. Names are keyed hashes (`limitKey`), as every counter's.

// all the buckets of one request or none: the longest wait, or 0 once each took a fetch
const SCRIPT = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tats = {}
local wait = 0
for i, key in ipairs(KEYS) do
  tats[i] = math.max(tonumber(redis.call('GET', key) or '0'), now)
  wait = math.max(wait, tats[i] - now - (burst - 1) * interval)
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tats[i] + interval, 'PX', tats[i] + interval - now)
end
return 0
`

// in memory, the pairs kept at most; full buckets are forgotten first
const MEMORY_PAIRS = 100_000

export default fp(async function prekeyLimitPlugin (fastify) {
  const { enabled, prekeys: { max: burst, timeWindow: interval } } = fastify.config.rateLimit
  const redis = fastify.limitRedis
  const namespace = `${fastify.config.redisPrefix}rl:prekeys:`
  const tats = new Map<string, number>()

  /** Milliseconds to wait before every one of `keys` may fetch again, or 0, counting this fetch in each when 0. */
  function takeInMemory (keys: string[], now: number): number {
    const wait = Math.max(0, ...keys.map(key => Math.max(tats.get(key) ?? 0, now) - now - (burst - 1) * interval))
    if (wait > 0) return wait
    for (const key of keys) {
      const tat = Math.max(tats.get(key) ?? 0, now)
      tats.delete(key) // re-inserted last: the map's order is the order of use
      tats.set(key, tat + interval)
    }
    if (tats.size > MEMORY_PAIRS) {
      for (const [name, time] of tats) if (time <= now) tats.delete(name)
      // still full of live buckets: the least recently used go
      for (const name of tats.keys()) {
        if (tats.size <= MEMORY_PAIRS) break
        tats.delete(name)
      }
    }
    return 0
  }

  async function take (keys: string[]): Promise<number> {
    if (redis === undefined) return takeInMemory(keys, Date.now())
    try {
      return Number(await redis.eval(SCRIPT, keys.length, ...keys.map(key => `${namespace}${key}`), interval, burst))
    } catch {
      return 0 // Redis unreachable: open, as every shared limit (rate-limit.ts logs the outage)
    }
  }

  fastify.decorate('limitPrekeys', async function (request: FastifyRequest, reply: FastifyReply, username: string, deviceIds: number[]) {
    if (!enabled || deviceIds.length === 0) return
    const pair = `${usernameKey(request.user.username)}>${usernameKey(username)}`
    // no username holds '>' or '#': each key is unambiguous
    const wait = await take(deviceIds.map(id => fastify.limitKey(`${pair}#${id}`)))
    if (wait === 0) return
    const seconds = Math.ceil(wait / 1000)
    reply.header('retry-after', seconds)
    fastify.metrics.refused(request, 'prekeys')
    throw new AccountRateLimited(`prekey bundle fetches of ${username}'s devices`, seconds)
  })
}, { name: 'prekey-limit', dependencies: ['config', 'rate-limit'] })

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Counts a fetch of the bundles of `username`'s devices `deviceIds` by the caller's account
     * under RATE_LIMIT_PREKEYS, one bucket per device, all or none; throws a 429 with
     * retry-after when a bucket is empty (then nothing is counted).
     */
    limitPrekeys: (request: FastifyRequest, reply: FastifyReply, username: string, deviceIds: number[]) => Promise<void>
  }
}
