import type { FastifyJWT } from '@fastify/jwt'
import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { dayStart, touchDevice, type Device } from '../../db/devices.js'
import { findSessionUser } from '../../db/sessions.js'
import type { User } from '../../db/users.js'
import { AccountDisabled, AccountGone, DeviceRemoved, InvalidToken, MalformedAuthorization, MissingToken, TokenExpired, TokenRevoked } from '../../errors.js'

/** How many verified tokens are remembered (about 0.5 KiB each). */
const VERIFIED_TOKENS = 10_000

const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*) *$/

// `onRequest: fastify.authenticate` on a protected route: every way a token can be
// missing, malformed, forged, expired or orphaned ends in a 401, never in a 500.

export default fp(async function authPlugin (fastify) {
  fastify.decorateRequest('token', null as unknown as FastifyRequest['token'])
  fastify.decorateRequest('device', null as unknown as FastifyRequest['device'])
  fastify.decorateRequest('sessionChecked', null)

  // Tokens whose signature and claims were checked, by their text, until they expire: a
  // client sends the same token with every request. fast-jwt's own cache keys each lookup
  // by a SHA-256 of the token, which under load cost as much as verifying the HMAC again.
  // Revocation, expiry and the account are still checked on every request.
  const verified = new Map<string, FastifyJWT['payload']>()

  function checkSignature (token: string): FastifyJWT['payload'] {
    const known = verified.get(token)
    if (known !== undefined && typeof known.exp === 'number' && known.exp * 1000 > Date.now()) return known
    verified.delete(token)
    let payload: FastifyJWT['payload']
    try {
      payload = fastify.jwt.verify<FastifyJWT['payload']>(token)
    } catch (error) {
      throw (error as { code?: string }).code === 'FAST_JWT_EXPIRED' ? new TokenExpired() : new InvalidToken()
    }
    // the oldest entry makes room (a Map iterates in insertion order)
    if (verified.size >= VERIFIED_TOKENS) verified.delete(verified.keys().next().value as string)
    verified.set(token, payload)
    return payload
  }

  fastify.decorate('verifyToken', async function verifyToken (token: string): Promise<Session> {
    const payload = checkSignature(token)
    const claims = sessionClaims(payload)
    if (claims === undefined) throw new InvalidToken()
    const { deviceKey, jti, exp } = claims
    const user = await findSessionUser(fastify.db, payload.user_id, deviceKey, jti)
    if (user === undefined) throw new AccountGone()
    if (user.disabled) throw new AccountDisabled()
    if (user.revoked || user.token_version !== payload.ver) throw new TokenRevoked()
    if (user.device === undefined) throw new DeviceRemoved()
    const today = dayStart(Date.now())
    if (user.device.lastSeenAt < today) await touchDevice(fastify.db, deviceKey, today)
    return { user: { id: user.id, username: user.username }, token: { jti, exp }, device: { key: deviceKey, id: user.device.id } }
  })

  function bearerToken (request: FastifyRequest): string {
    const header = request.headers.authorization
    if (header === undefined || header === '') throw new MissingToken()
    const token = BEARER.exec(header)?.[1]
    if (token === undefined) throw new MalformedAuthorization()
    return token
  }

  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest) {
    const session = await fastify.verifyToken(bearerToken(request))
    request.user = session.user
    request.token = session.token
    request.device = session.device
  })

  // A route may start its reads before its session is known to be valid (the read-only
  // routes, and send_message for its recipient): the signature and claims are checked here
  // at once, the revocation, the account and the device by the lookup
  // `request.sessionChecked` awaits, which the route awaits before it answers, counts
  // against a limit or changes anything (afterSession), and the error handler before any other
  // error (a 400 or 404 would otherwise answer a token that no longer works). The lookup
  // and the route's first reads are then sent together (on PostgreSQL one round trip
  // instead of two). The user and device are the token's own claims, which are what the
  // lookup would answer for a valid token: a user's name never changes, nor a device key's
  // device.
  fastify.decorate('authenticateDeferred', async function authenticateDeferred (request: FastifyRequest) {
    const token = bearerToken(request)
    const payload = checkSignature(token)
    const claims = sessionClaims(payload)
    const deviceId = payload.device_id ?? 1
    if (claims === undefined || typeof payload.username !== 'string' || !Number.isSafeInteger(deviceId)) {
      // claims this does not vouch for: the whole check first, as authenticate does
      await fastify.authenticate(request)
      return
    }
    request.user = { id: payload.user_id, username: payload.username }
    request.token = { jti: claims.jti, exp: claims.exp }
    request.device = { key: claims.deviceKey, id: deviceId }
    const checked = fastify.verifyToken(token).then(() => undefined)
    checked.catch(() => {}) // rejections reach the route when it awaits it
    request.sessionChecked = checked
  })
  fastify.decorate('issueToken', function issueToken (user: { id: number, username: string, token_version: number }, device: Device) {
    const token = fastify.jwt.sign({ user_id: user.id, username: user.username, jti: randomUUID(), ver: user.token_version, device_id: device.id, dk: device.key })
    return { token, expires_in: fastify.config.tokenTtlSeconds, device_id: device.id }
  })
}, { name: 'auth', dependencies: ['jwt', 'db', 'config'] })

/**
 * The claims that name a token's session besides its user (checked too): its device key,
 * jti and expiry; undefined when one of them is missing or malformed. A token from before devices is device
 * 1's, whose key was then the user's id (see its migration).
 */
function sessionClaims (payload: FastifyJWT['payload']): { deviceKey: number, jti: string, exp: number } | undefined {
  const deviceKey = payload.dk ?? payload.user_id
  if (!Number.isSafeInteger(payload.user_id) || typeof payload.jti !== 'string' || typeof payload.exp !== 'number' || !Number.isSafeInteger(deviceKey)) return undefined
  return { deviceKey, jti: payload.jti, exp: payload.exp }
}

/**
 * What `reads` gives, once the request's session has been checked too (after
 * authenticateDeferred): a token that no longer works gets its 401, whatever the reads did.
 * Started before it, the reads go out with the session's lookup.
 */
export async function afterSession<T> (request: FastifyRequest, reads: Promise<T>): Promise<T> {
  await Promise.allSettled([reads, request.sessionChecked])
  await request.sessionChecked
  return await reads
}

export interface Session {
  user: User
  token: FastifyRequest['token']
  device: Device
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest) => Promise<void>
    /** authenticate for a route that awaits request.sessionChecked before it answers, counts or writes. */
    authenticateDeferred: (request: FastifyRequest) => Promise<void>
    /** Checks a bare token (signature, expiry, revocation, account): its session, or the 401 to send. */
    verifyToken: (token: string) => Promise<Session>
    /** A fresh token (with its own jti) for the user's device at the user's current token_version. */
    issueToken: (user: { id: number, username: string, token_version: number }, device: Device) => { token: string, expires_in: number, device_id: number }
  }
  interface FastifyRequest {
    /** The verified token of an authenticated request (for logout). */
    token: { jti: string, exp: number }
    /** The device of an authenticated request's token. */
    device: Device
    /** After authenticateDeferred: settles once the token's session is checked, rejecting with its 401; null otherwise. */
    sessionChecked: Promise<void> | null
  }
}
