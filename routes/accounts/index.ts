import type { FastifyPluginAsync } from 'fastify'
import login from './login.js'
import register from './register.js'

const accounts: FastifyPluginAsync = async (fastify) => {
  await fastify.register(register)
  await fastify.register(login)
}

export default accounts
