import type { FastifyPluginAsync } from 'fastify'
import ackMessages from './ack-messages.js'
import getMessages from './get-messages.js'
import sendMessage from './send-message.js'

const messages: FastifyPluginAsync = async (fastify) => {
  await fastify.register(sendMessage)
  await fastify.register(getMessages)
  await fastify.register(ackMessages)
}

export default messages
