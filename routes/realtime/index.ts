import type { FastifyPluginAsync } from 'fastify'
import sync from './sync.js'
import ws from './ws.js'

const realtime: FastifyPluginAsync = async (fastify) => {
  await fastify.register(sync)
  await fastify.register(ws)
}

export default realtime
