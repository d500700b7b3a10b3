import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findUserKey, putPublicKey } from '../../db/keys.js'
import { AccountRateLimited } from '../../errors.js'
import { MessageReply, bearer, errorReplies, publicKeySchema } from '../schemas.js'

const uploadKey: FastifyPluginAsyncTypebox = async (fastify) => {
  const UploadKeyBody = Type.Object({
    public_key: publicKeySchema(fastify.config.maxKeyLength)
  })
  fastify.post('/upload_key', {
    schema: {
      summary: 'Upload (or replace) your public key',
      description: 'A different key sends each contact a `key_changed` event: changes are limited per account (RATE_LIMIT_UPLOAD_KEY), then 429 with retry-after. ' +
        'A first key and the same key again are not changes, and are never refused by it.',
      tags: ['keys'],
      security: bearer,
      body: UploadKeyBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 413, 415, 429) }
    },
    onRequest: fastify.authenticate
  }, async (request, reply) => {
    const { public_key: key } = request.body
    try {
      await fastify.limitKeyChange(request, reply, false)
    } catch (error) {
      // out of changes, a first key or the key already stored changes nothing: no reason to refuse it
      if (!(error instanceof AccountRateLimited)) throw error
      const stored = (await findUserKey(fastify.db, request.user.username))?.public_key
      if (stored !== null && stored !== key) throw error
      reply.removeHeader('retry-after')
    }
    const { changed, notify } = await putPublicKey(fastify.db, request.user, key)
    if (changed) await fastify.limitKeyChange(request, reply, true)
    await fastify.hub.publish(notify)
    return { message: 'Public key uploaded successfully.' }
  })
}

export default uploadKey
