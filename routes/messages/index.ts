import type { FastifyPluginAsync } from 'fastify'
import ackMessages from './ack-messages.js'
import getMessages from './get-messages.js'
import sendEnvelopes from './send-envelopes.js'
import sendMessage from './send-message.js'

const messages: FastifyPluginAsync = async (fastify) => {
  await fastify.register(sendMessage)
  await fastify.register(getMessages)
  await fastify.register(ackMessages)
  await fastify.register(sendEnvelopes)
}

export default messages
