import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { putPublicKey } from '../../db/keys.js'
import { MessageReply, bearer, errorReplies, publicKeySchema } from '../schemas.js'

const uploadKey: FastifyPluginAsyncTypebox = async (fastify) => {
  const UploadKeyBody = Type.Object({
    public_key: publicKeySchema(fastify.config.maxKeyLength)
  })
  fastify.post('/upload_key', {
    schema: {
      summary: 'Upload (or replace) your public key',
      tags: ['keys'],
      security: bearer,
      body: UploadKeyBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const { notify } = await putPublicKey(fastify.db, request.user, request.body.public_key)
    await fastify.hub.publish(notify)
    return { message: 'Public key uploaded successfully.' }
  })
}

export default uploadKey
