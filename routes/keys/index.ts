import type { FastifyPluginAsync } from 'fastify'
import getBundles from './get-bundles.js'
import getKey from './get-key.js'
import getPrekeyCount from './get-prekey-count.js'
import putIdentityKey from './put-identity-key.js'
import putPrekeys from './put-prekeys.js'
import uploadKey from './upload-key.js'

const keys: FastifyPluginAsync = async (fastify) => {
  await fastify.register(uploadKey)
  await fastify.register(getKey)
  await fastify.register(putIdentityKey)
  await fastify.register(putPrekeys)
  await fastify.register(getPrekeyCount)
  await fastify.register(getBundles)
}

export default keys
