import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { eraseUser, findUserWithHashById } from '../../db/users.js'
import { AccountGone, WrongPassword } from '../../errors.js'
import { MessageReply, Password, bearer, errorReplies } from '../schemas.js'

export const DeleteAccountBody = Type.Object({ password: Password })

const deleteAccount: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/delete_account', {
    schema: {
      summary: 'Erase your account for good',
      description: 'Erases your keys, chat requests, contacts, blocks and every message you sent or received: ' +
        'your partners lose those conversations too, as on Signal, and every event of theirs that named you; each gets a `contact_deleted` event that does not name you. ' +
        'Your tokens stop working and the name can be registered again. ' +
        'A wrong password is a 403 and counts against a budget of this token (RATE_LIMIT_SESSION_PASSWORD_FAILURES), never against the login budget.',
      tags: ['accounts'],
      security: bearer,
      body: DeleteAccountBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 403, 413, 415, 429) }
    },
    onRequest: fastify.authenticate
  }, async (request, reply) => {
    const user = await findUserWithHashById(fastify.db, request.user.id)
    if (user === undefined) throw new AccountGone()
    if (!await fastify.verifySessionPassword(request, reply, user.password_hash, request.body.password)) throw new WrongPassword()
    const notify = await eraseUser(fastify.db, user.id)
    if (notify === undefined) throw new AccountGone()
    await fastify.hub.disconnectUser(user.id)
    await fastify.hub.publish(notify)
    return { message: 'Account deleted.' }
  })
}

export default deleteAccount
