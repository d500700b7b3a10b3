import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { RateLimitSetting } from '../../config.js'
import type { Recipient } from '../../db/contacts.js'
import { usernameKey } from '../../db/users.js'
import { AccountRateLimited } from '../../errors.js'
import type { LimitName } from './metrics.js'
import { sourceKey } from './source-key.js'

// Limits per account beside the per-IP ones, so that spreading over many addresses does
// not help: messages per sender and per sender->recipient pair, key changes (each sends an
// event to every contact), lookups of names that are not contacts (get_key and get_messages
// tell whether a name exists), and failed password checks.
// A failed login counts per account and address, so that a stranger cannot lock the owner
// out; past a higher count per account, whatever the addresses, each address gets a single
// failure per window (slowed, never locked: a first attempt from a clean address is always
// checked). change_password and delete_account, taken with a valid token, have a budget of
// their own per token, apart from the login's (docs/security.md, "Failed passwords"). The counters are
// @fastify/rate-limit's (in Redis with REDIS_URL, shared by every instance); each check runs
// after authentication and validation and before the handler, so a limited request has no
// side effect. Keys are usernames (case-folded), as for failures, not ids: ids restart at 1
// when the database is recreated while Redis keeps its counts for their window, so a key by
// id could hold a former account's count.

type Limiter = ReturnType<FastifyInstance['createRateLimit']>

export default fp(async function accountLimitsPlugin (fastify) {
  const { rateLimit: settings } = fastify.config
  const keys = new WeakMap<FastifyRequest, string>()
  // a lower max for this request's check (an account over its cap allows one failure per address)
  const maxes = new WeakMap<FastifyRequest, number>()

  // each limiter's name, for the metrics of its refusals
  const names = new Map<Limiter, LimitName>()

  function limiter (setting: RateLimitSetting, prefix: LimitName | 'looked-up', lowerable = false, cache?: number): Limiter {
    const limit = fastify.createRateLimit({
      max: lowerable ? request => maxes.get(request) ?? setting.max : setting.max,
      timeWindow: setting.timeWindow,
      keyGenerator: request => `${prefix}:${fastify.limitKey(keys.get(request) ?? '')}`,
      // without Redis, the in-memory counters of one limit (5000 by default, the least recently used go first)
      ...(cache === undefined ? {} : { cache })
    })
    if (prefix !== 'looked-up') names.set(limit, prefix)
    return limit
  }

  /** The status of `key`'s count under `limit`, counting this request unless `increment` is false; never refuses. */
  async function count (limit: Limiter, request: FastifyRequest, key: string, increment = true): Promise<Awaited<ReturnType<Limiter>>> {
    keys.set(request, key)
    return await limit(request, { increment })
  }

  /** A peek (increment false) that finds the budget spent. */
  const spent = (status: Awaited<ReturnType<Limiter>>): boolean => !status.isAllowed && status.remaining === 0

  /** Counts the request under `key`; a 429 with retry-after once the limit is passed. */
  async function consume (limit: Limiter, request: FastifyRequest, reply: FastifyReply, key: string, what: string, increment: boolean): Promise<void> {
    const status = await count(limit, request, key, increment)
    // a peek (increment false) must refuse at the limit already: the attempt it guards would pass it
    if (status.isAllowed || (increment ? !status.isExceeded : status.remaining > 0)) return
    reply.header('retry-after', status.ttlInSeconds)
    const name = names.get(limit)
    if (name !== undefined) fastify.metrics.refused(request, name)
    throw new AccountRateLimited(what, status.ttlInSeconds)
  }

  const perSender = limiter(settings.sendMessageSender, 'send-sender')
  const perPair = limiter(settings.sendMessagePair, 'send-pair')
  const addressFailures = limiter(settings.loginFailures, 'login-failures', true)
  const accountFailures = limiter(settings.loginFailuresAccount, 'login-failures-account')
  const sessionFailures = limiter(settings.sessionPasswordFailures, 'session-password-failures')
  const keyChanges = limiter(settings.uploadKey, 'key-changes')
  const lookups = limiter(settings.lookups, 'lookups')
  // which names an account looked up in the window, so that asking about one again is free
  const looked = limiter({ max: 1, timeWindow: settings.lookups.timeWindow }, 'looked-up', false, 50_000)

  fastify.decorate('limitSendMessage', async function (request: FastifyRequest, reply: FastifyReply, recipientName: string) {
    if (!settings.enabled) return
    const sender = usernameKey(request.user.username)
    await consume(perSender, request, reply, sender, 'messages', true)
    // no username holds '>': the pair's key is unambiguous
    await consume(perPair, request, reply, `${sender}>${usernameKey(recipientName)}`, 'messages to this recipient', true)
  })

  fastify.decorate('limitKeyChange', async function (request: FastifyRequest, reply: FastifyReply, made: boolean) {
    if (!settings.enabled) return
    const account = usernameKey(request.user.username)
    if (!made) return await consume(keyChanges, request, reply, account, 'key changes', false)
    await count(keyChanges, request, account)
  })

  fastify.decorate('limitLookup', async function (request: FastifyRequest, reply: FastifyReply, name: string, found: Recipient | undefined) {
    // whether a name exists is itself an answer: a lookup of anyone but oneself or a contact counts
    if (!settings.enabled || found?.contact === true || found?.id === request.user.id) return
    const account = usernameKey(request.user.username)
    // no username holds '>': the key is unambiguous
    const pair = `${account}>${usernameKey(name)}`
    // a name already looked up in the window costs nothing: a client polling a pending request is not an enumeration
    if (spent(await count(looked, request, pair, false))) return
    await consume(lookups, request, reply, account, 'lookups of users who are not your contacts', false)
    await count(looked, request, pair)
    await count(lookups, request, account)
  })

  fastify.decorate('verifyPasswordRateLimited', async function (request: FastifyRequest, reply: FastifyReply, username: string, storedHash: string | undefined, password: string) {
    const account = usernameKey(username)
    // no username holds '|': the key is unambiguous
    const address = `${account}|${sourceKey(request.ip)}`
    if (settings.enabled) {
      if (spent(await count(accountFailures, request, account, false))) maxes.set(request, 1)
      await consume(addressFailures, request, reply, address, 'failed password attempts', false)
    }
    if (await fastify.passwords.verify(storedHash, password)) return true
    if (settings.enabled) {
      await count(accountFailures, request, account)
      await count(addressFailures, request, address)
    }
    return false
  })

  fastify.decorate('verifySessionPassword', async function (request: FastifyRequest, reply: FastifyReply, storedHash: string, password: string) {
    if (settings.enabled) await consume(sessionFailures, request, reply, request.token.jti, 'failed password attempts with this token', false)
    if (await fastify.passwords.verify(storedHash, password)) return true
    if (settings.enabled) {
      await count(sessionFailures, request, request.token.jti)
    }
    return false
  })
}, { name: 'account-limits', dependencies: ['config', 'rate-limit', 'passwords'] })

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The per-account limit of key changes: with `made` false, throws a 429 when the account
     * has no change left (a peek); with `made` true, counts a change that was made.
     */
    limitKeyChange: (request: FastifyRequest, reply: FastifyReply, made: boolean) => Promise<void>
    /**
     * Counts a lookup of `name` (`found`: the user of that name, if any, and whether a contact)
     * unless it is the caller or a contact, against the account's budget of different such
     * names per window; throws a 429 past it.
     */
    limitLookup: (request: FastifyRequest, reply: FastifyReply, name: string, found: Recipient | undefined) => Promise<void>
    /** Per-account send_message limits (per sender, and per sender->recipient); throws a 429. */
    limitSendMessage: (request: FastifyRequest, reply: FastifyReply, recipientName: string) => Promise<void>
    /**
     * Verifies a login's password against a stored hash (or none: same time) under the limit
     * of failed logins per account and address (one per address once the account is over its
     * cap): throws a 429 when this address has too many, and counts this attempt when it fails.
     */
    verifyPasswordRateLimited: (request: FastifyRequest, reply: FastifyReply, username: string, storedHash: string | undefined, password: string) => Promise<boolean>
    /**
     * Verifies the password of an authenticated request's account under the token's own limit
     * of failures (never the login's): throws a 429 past it, counts this attempt when it fails.
     */
    verifySessionPassword: (request: FastifyRequest, reply: FastifyReply, storedHash: string, password: string) => Promise<boolean>
  }
}
