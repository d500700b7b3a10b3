import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { removeDevice } from '../../db/devices.js'
import { DeviceNotFound, PrimaryDevice } from '../../errors.js'
import { DeviceId, MessageReply, bearer, errorReplies } from '../schemas.js'

export const RemoveDeviceParams = Type.Object({ deviceId: DeviceId })

const removeDeviceRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.delete('/v1/devices/:deviceId', {
    schema: {
      summary: 'Remove one of your devices',
      description: 'Its tokens stop working, its sockets and long-polls close, and its keys and undelivered events are deleted. ' +
        'Your other devices and your contacts get `devices_changed`. Device 1 is the account itself (400 PRIMARY_DEVICE); ' +
        'a device can remove itself.',
      tags: ['devices'],
      security: bearer,
      params: RemoveDeviceParams,
      response: { 200: MessageReply, ...errorReplies(400, 401, 404) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const { deviceId } = request.params
    if (deviceId === 1) throw new PrimaryDevice()
    const removed = await removeDevice(fastify.db, request.user, deviceId)
    if (removed === undefined) throw new DeviceNotFound(deviceId)
    await fastify.hub.disconnectUser(request.user.id, { device: removed.key })
    await fastify.hub.publish(removed.notify)
    return { message: `Device ${deviceId} removed.` }
  })
}

export default removeDeviceRoute
