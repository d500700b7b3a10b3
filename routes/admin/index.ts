import type { FastifyPluginAsync } from 'fastify'
import api from './api/index.js'
import webConsole from './console.js'

// The operator's web console (/admin) and its JSON API (/admin/api/...). Neither exists
// unless ADMIN_TOKEN is set: without it every /admin URL is a plain 404.

const admin: FastifyPluginAsync = async (fastify) => {
  const token = fastify.config.adminToken
  if (token === undefined) return
  await fastify.register(webConsole)
  await fastify.register(api, { prefix: '/admin/api', token })
}

export default admin
