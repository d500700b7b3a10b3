import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { changePassword, findUserWithHashById } from '../../db/users.js'
import { AccountGone, WrongPassword } from '../../errors.js'
import { NewPassword, Password, bearer, errorReplies } from '../schemas.js'

export const ChangePasswordBody = Type.Object({ old_password: Password, new_password: NewPassword })
export const ChangePasswordReply = Type.Object({
  message: Type.String(),
  token: Type.String({ description: 'a fresh token: every token issued before the change has stopped working, this one included' }),
  expires_in: Type.Integer({ description: 'seconds until the new token expires' })
})

const changePasswordRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/change_password', {
    schema: {
      summary: 'Change your password; every older token stops working',
      description: 'A wrong old_password is a 403 and counts against a budget of this token (RATE_LIMIT_SESSION_PASSWORD_FAILURES), never against the login budget.',
      tags: ['accounts'],
      security: bearer,
      body: ChangePasswordBody,
      response: { 200: ChangePasswordReply, ...errorReplies(400, 401, 403, 413, 415, 429) }
    },
    onRequest: fastify.authenticate
  }, async (request, reply) => {
    const { old_password: oldPassword, new_password: newPassword } = request.body
    const user = await findUserWithHashById(fastify.db, request.user.id)
    if (user === undefined) throw new AccountGone()
    if (!await fastify.verifySessionPassword(request, reply, user.password_hash, oldPassword)) throw new WrongPassword()
    const version = await changePassword(fastify.db, user.id, user.password_hash, await fastify.passwords.hash(newPassword))
    // undefined: a concurrent change won, so the old password checked here is no longer the password
    if (version === undefined) throw new WrongPassword()
    // every socket and long-poll of the account ran on a token that no longer works
    await fastify.hub.disconnectUser(user.id)
    return { message: 'Password changed; other sessions have been logged out.', ...fastify.issueToken({ ...user, token_version: version }, request.device) }
  })
}

export default changePasswordRoute
