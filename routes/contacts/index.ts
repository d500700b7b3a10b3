import type { FastifyPluginAsync } from 'fastify'
import acceptChat from './accept-chat.js'
import blockUser from './block-user.js'
import cancelRequest from './cancel-request.js'
import declineChat from './decline-chat.js'
import getBlocked from './get-blocked.js'
import getChatRequests from './get-chat-requests.js'
import getContacts from './get-contacts.js'
import removeContact from './remove-contact.js'
import requestChat from './request-chat.js'
import unblockUser from './unblock-user.js'

const contacts: FastifyPluginAsync = async (fastify) => {
  await fastify.register(requestChat)
  await fastify.register(getChatRequests)
  await fastify.register(acceptChat)
  await fastify.register(declineChat)
  await fastify.register(cancelRequest)
  await fastify.register(getContacts)
  await fastify.register(removeContact)
  await fastify.register(blockUser)
  await fastify.register(unblockUser)
  await fastify.register(getBlocked)
}

export default contacts
