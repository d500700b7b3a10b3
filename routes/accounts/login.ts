import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findUserWithHash, upgradePasswordHash } from '../../db/users.js'
import { InvalidCredentials } from '../../errors.js'
import { Password, Username, errorReplies } from '../schemas.js'

export const LoginBody = Type.Object({ username: Username, password: Password })
export const LoginReply = Type.Object({
  token: Type.String({ description: 'HS256 JWT for `Authorization: Bearer <token>`' }),
  expires_in: Type.Integer({ description: 'seconds until the token expires' })
})

const login: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/login', {
    schema: {
      summary: 'Log in and receive a token',
      description: 'An unknown user, a wrong password and a disabled account get the same 401, after the same work. ' +
        'Failed attempts are also limited per account and address (RATE_LIMIT_LOGIN_FAILURES; one per address once the account passes RATE_LIMIT_LOGIN_FAILURES_ACCOUNT): then 429 with retry-after.',
      tags: ['accounts'],
      body: LoginBody,
      response: { 200: LoginReply, ...errorReplies(400, 401, 413, 415, 429) }
    },
    config: { rateLimit: fastify.routeRateLimit('login') }
  }, async (request, reply) => {
    const { username, password } = request.body
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
    return fastify.issueToken(user)
  })
}

export default login
