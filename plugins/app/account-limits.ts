import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { RateLimitSetting } from '../../config.js'
import { usernameKey } from '../../db/users.js'
import { AccountRateLimited } from '../../errors.js'

// Limits per account beside the per-IP ones, so that spreading over many addresses does
// not help: messages per sender and per sender->recipient pair, and failed password checks
// per account (login, change_password, delete_account share one count). The counters are
// @fastify/rate-limit's (in Redis with REDIS_URL, shared by every instance); each check runs
// after authentication and validation and before the handler, so a limited request has no
// side effect. Keys are usernames (case-folded), as for failures, not ids: ids restart at 1
// when the database is recreated while Redis keeps its counts for their window, so a key by
// id could hold a former account's count.

type Limiter = ReturnType<FastifyInstance['createRateLimit']>

export default fp(async function accountLimitsPlugin (fastify) {
  const { rateLimit: settings } = fastify.config
  const keys = new WeakMap<FastifyRequest, string>()

  function limiter (setting: RateLimitSetting, prefix: string): Limiter {
    return fastify.createRateLimit({
      max: setting.max,
      timeWindow: setting.timeWindow,
      keyGenerator: request => `${prefix}:${keys.get(request) ?? ''}`
    })
  }

  /** Counts the request under `key`; a 429 with retry-after once the limit is passed. */
  async function consume (check: Limiter, request: FastifyRequest, reply: FastifyReply, key: string, what: string, increment: boolean): Promise<void> {
    keys.set(request, key)
    const status = await check(request, { increment })
    // a peek (increment false) must refuse at the limit already: the attempt it guards would pass it
    if (status.isAllowed || (increment ? !status.isExceeded : status.remaining > 0)) return
    reply.header('retry-after', status.ttlInSeconds)
    throw new AccountRateLimited(what, status.ttlInSeconds)
  }

  const perSender = limiter(settings.sendMessageSender, 'send-sender')
  const perPair = limiter(settings.sendMessagePair, 'send-pair')
  const failures = limiter(settings.loginFailures, 'password-failures')

  fastify.decorate('limitSendMessage', async function (request: FastifyRequest, reply: FastifyReply, recipientName: string) {
    if (!settings.enabled) return
    const sender = usernameKey(request.user.username)
    await consume(perSender, request, reply, sender, 'messages', true)
    // no username holds '>': the pair's key is unambiguous
    await consume(perPair, request, reply, `${sender}>${usernameKey(recipientName)}`, 'messages to this recipient', true)
  })

  fastify.decorate('verifyPasswordRateLimited', async function (request: FastifyRequest, reply: FastifyReply, username: string, storedHash: string | undefined, password: string) {
    const key = usernameKey(username)
    if (settings.enabled) await consume(failures, request, reply, key, 'failed password attempts', false)
    if (await fastify.passwords.verify(storedHash, password)) return true
    if (settings.enabled) {
      keys.set(request, key)
      await failures(request)
    }
    return false
  })
}, { name: 'account-limits', dependencies: ['config', 'rate-limit', 'passwords'] })

declare module 'fastify' {
  interface FastifyInstance {
    /** Per-account send_message limits (per sender, and per sender->recipient); throws a 429. */
    limitSendMessage: (request: FastifyRequest, reply: FastifyReply, recipientName: string) => Promise<void>
    /**
     * Verifies a password against a stored hash (or none: same time) under the per-account
     * limit of failed attempts: throws a 429 once the account has too many recent failures,
     * and counts this attempt when it fails.
     */
    verifyPasswordRateLimited: (request: FastifyRequest, reply: FastifyReply, username: string, storedHash: string | undefined, password: string) => Promise<boolean>
  }
}
