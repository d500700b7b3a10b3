import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { primaryDevice, registerDevice } from '../../db/devices.js'
import { findUserWithHash, upgradePasswordHash } from '../../db/users.js'
import { AccountGone, DeviceNotFound, InvalidCredentials, TooManyDevices } from '../../errors.js'
import { DeviceId, DeviceName, Password, RegistrationId, Username, errorReplies, noToken } from '../schemas.js'

export const LoginDevice = Type.Object({
  id: Type.Optional(DeviceId),
  registrationId: RegistrationId,
  name: Type.Optional(DeviceName)
}, {
  additionalProperties: false,
  description: 'Without `id`: add a device (the next free number from 2). With `id`: that device of yours; a registrationId other than its own ' +
    'registers it again (an app reinstalled: its earlier tokens, keys and undelivered events are dropped), the same one only logs it in (and renames it if `name` is given).'
})

export const LoginBody = Type.Object({
  username: Username,
  password: Password,
  device: Type.Optional(LoginDevice)
})
export const LoginReply = Type.Object({
  token: Type.String({ description: 'HS256 JWT for `Authorization: Bearer <token>`' }),
  expires_in: Type.Integer({ description: 'seconds until the token expires' }),
  device_id: Type.Integer({ minimum: 1, maximum: 127, description: 'the device this token belongs to (1 when the login names no device)' })
})

const login: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/login', {
    schema: {
      summary: 'Log in and receive a token',
      description: 'Without `device`, the token is device 1\'s (what every client of the original API is). With `device`, a login adds a device ' +
        '(at most MAX_DEVICES per account: 409 TOO_MANY_DEVICES) or registers one again (404 DEVICE_NOT_FOUND for a number the account does not have); ' +
        'the account\'s other devices and its contacts get `devices_changed`. ' +
        'An unknown user, a wrong password and a disabled account get the same 401, after the same work. ' +
        'Failed attempts are also limited per account and address (RATE_LIMIT_LOGIN_FAILURES; one per address once the account passes RATE_LIMIT_LOGIN_FAILURES_ACCOUNT): then 429 with retry-after.',
      tags: ['accounts'],
      security: noToken,
      body: LoginBody,
      response: { 200: LoginReply, ...errorReplies(400, 401, 404, 409, 413, 415, 429) }
    },
    config: { rateLimit: fastify.routeRateLimit('login') }
  }, async (request, reply) => {
    const { username, password, device } = request.body
    const user = await findUserWithHash(fastify.db, username)
    // A disabled account is checked against no hash, as an unknown name is: its right password
    // gets the same 401 as a wrong one, after the same work, and counts as a failure like one,
    // so that neither the answer nor the failure budget tells which password was right.
    const hash = user?.disabled_at === null ? user.password_hash : undefined
    const valid = await fastify.verifyPasswordRateLimited(request, reply, username, hash, password)
    if (!valid || user === undefined || hash === undefined) throw new InvalidCredentials()
    if (fastify.passwords.needsRehash(user.password_hash)) {
      await upgradePasswordHash(fastify.db, user.id, user.password_hash, await fastify.passwords.hash(password))
    }
    if (device === undefined) {
      const primary = await primaryDevice(fastify.db, user.id)
      if (primary === undefined) throw new AccountGone()
      return fastify.issueToken(user, primary)
    }
    const outcome = await registerDevice(fastify.db, user, device, fastify.config.maxDevices)
    if (outcome === 'too-many') throw new TooManyDevices(fastify.config.maxDevices)
    if (outcome === 'unknown-device') throw new DeviceNotFound(device.id ?? 0)
    if (outcome.replaced !== undefined) await fastify.hub.disconnectUser(user.id, { device: outcome.replaced })
    await fastify.hub.publish(outcome.notify)
    return fastify.issueToken(user, outcome.device)
  })
}

export default login
