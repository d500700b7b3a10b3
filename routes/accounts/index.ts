import type { FastifyPluginAsync } from 'fastify'
import changePassword from './change-password.js'
import deleteAccount from './delete-account.js'
import login from './login.js'
import logout from './logout.js'
import register from './register.js'

const accounts: FastifyPluginAsync = async (fastify) => {
  await fastify.register(register)
  await fastify.register(login)
  await fastify.register(logout)
  await fastify.register(changePassword)
  await fastify.register(deleteAccount)
}

export default accounts
