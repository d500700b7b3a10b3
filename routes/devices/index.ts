import type { FastifyPluginAsync } from 'fastify'
import listDevices from './list-devices.js'
import removeDevice from './remove-device.js'

const devices: FastifyPluginAsync = async (fastify) => {
  await fastify.register(listDevices)
  await fastify.register(removeDevice)
}

export default devices
