import type { FastifyPluginAsync } from 'fastify'
import { ConnectionCaps } from './connection-caps.js'
import sync from './sync.js'
import ws from './ws.js'

const realtime: FastifyPluginAsync = async (fastify) => {
  // one count for both: a socket and a waiting long-poll each hold a connection and a subscription
  const caps = new ConnectionCaps(fastify.config.rateLimit, (request, limit) => { fastify.metrics.refused(request, limit) })
  await fastify.register(sync, { caps })
  await fastify.register(ws, { caps })
}

export default realtime
