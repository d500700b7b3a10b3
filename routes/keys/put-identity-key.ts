import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { setIdentityKey } from '../../db/prekeys.js'
import { findUserWithHashById } from '../../db/users.js'
import { AccountGone, ValidationFailed, WrongPassword } from '../../errors.js'
import { MessageReply, Password, bearer, errorReplies } from '../schemas.js'
import { EcPublicKey } from './schemas.js'

export const PutIdentityKeyBody = Type.Object({
  identityKey: EcPublicKey,
  password: Type.Optional({ ...Password, description: "the account's password: needed to change an identity key already set" })
})

const putIdentityKey: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.put('/v1/keys/identity', {
    schema: {
      summary: "Set your account's identity key",
      description: 'The identity key belongs to the account (all its devices). A first key, or the same key again, needs no password. ' +
        'Changing it needs `password` (a wrong one is a 403 counted against RATE_LIMIT_SESSION_PASSWORD_FAILURES of this token), ' +
        'is limited per account with the key changes of upload_key (RATE_LIMIT_UPLOAD_KEY), deletes every prekey of every device ' +
        'of the account (the old key signed them: upload new ones), and sends each contact `key_changed`.',
      tags: ['keys'],
      security: bearer,
      body: PutIdentityKeyBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 403, 413, 415, 429) }
    },
    onRequest: fastify.authenticate
  }, async (request, reply) => {
    const { identityKey, password } = request.body
    let result = await setIdentityKey(fastify.db, request.user, identityKey, false)
    if (result.outcome === 'needs_password') {
      if (password === undefined) throw new ValidationFailed('body must have property password to change an identity key that is already set')
      await fastify.limitKeyChange(request, reply, false)
      const user = await findUserWithHashById(fastify.db, request.user.id)
      if (user === undefined) throw new AccountGone()
      if (!await fastify.verifySessionPassword(request, reply, user.password_hash, password)) throw new WrongPassword()
      result = await setIdentityKey(fastify.db, request.user, identityKey, true)
    }
    if (result.outcome === 'changed') {
      await fastify.limitKeyChange(request, reply, true)
      await fastify.hub.publish(result.notify)
      return { message: 'Identity key changed; every prekey of every device was deleted: upload new ones.' }
    }
    return { message: result.outcome === 'same' ? 'Identity key unchanged.' : 'Identity key set.' }
  })
}

export default putIdentityKey
