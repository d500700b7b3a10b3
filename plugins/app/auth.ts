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
    if (!Number.isSafeInteger(payload.user_id) || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') throw new InvalidToken()
    // a token from before devices is device 1's, whose key was then the user's id (see its migration)
    const deviceKey = payload.dk ?? payload.user_id
    if (!Number.isSafeInteger(deviceKey)) throw new InvalidToken()
    const user = await findSessionUser(fastify.db, payload.user_id, deviceKey, payload.jti)
    if (user === undefined) throw new AccountGone()
    if (user.disabled) throw new AccountDisabled()
    if (user.revoked || user.token_version !== payload.ver) throw new TokenRevoked()
    if (user.device === undefined) throw new DeviceRemoved()
    const today = dayStart(Date.now())
    if (user.device.lastSeenAt < today) await touchDevice(fastify.db, deviceKey, today)
    return { user: { id: user.id, username: user.username }, token: { jti: payload.jti, exp: payload.exp }, device: { key: deviceKey, id: user.device.id } }
  })

  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest) {
    const header = request.headers.authorization
    if (header === undefined || header === '') throw new MissingToken()
    const token = BEARER.exec(header)?.[1]
    if (token === undefined) throw new MalformedAuthorization()
    const session = await fastify.verifyToken(token)
    request.user = session.user
    request.token = session.token
    request.device = session.device
  })
  fastify.decorate('issueToken', function issueToken (user: { id: number, username: string, token_version: number }, device: Device) {
    const token = fastify.jwt.sign({ user_id: user.id, username: user.username, jti: randomUUID(), ver: user.token_version, device_id: device.id, dk: device.key })
    return { token, expires_in: fastify.config.tokenTtlSeconds, device_id: device.id }
  })
}, { name: 'auth', dependencies: ['jwt', 'db', 'config'] })

export interface Session {
  user: User
  token: FastifyRequest['token']
  device: Device
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest) => Promise<void>
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
  }
}
