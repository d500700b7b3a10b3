import type { FastifyPluginAsync } from 'fastify'
import getKey from './get-key.js'
import uploadKey from './upload-key.js'

const keys: FastifyPluginAsync = async (fastify) => {
  await fastify.register(uploadKey)
  await fastify.register(getKey)
}

export default keys
