import type { FastifyPluginAsync } from 'fastify'
import acceptChat from './accept-chat.js'
import getChatRequests from './get-chat-requests.js'
import getContacts from './get-contacts.js'
import requestChat from './request-chat.js'

const contacts: FastifyPluginAsync = async (fastify) => {
  await fastify.register(requestChat)
  await fastify.register(getChatRequests)
  await fastify.register(acceptChat)
  await fastify.register(getContacts)
}

export default contacts
