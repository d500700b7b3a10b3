import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listDevices } from '../../db/devices.js'
import { iso } from '../../db/time.js'
import { DeviceId, Timestamp, bearer, errorReplies } from '../schemas.js'

export const DeviceInfo = Type.Object({
  id: DeviceId,
  name: Type.Union([Type.String(), Type.Null()], { description: 'as the device gave it at login (opaque), or null' }),
  registrationId: Type.Union([Type.Integer(), Type.Null()], { description: 'null until the device logs in with one' }),
  created: Timestamp,
  lastSeen: Type.String({ ...Timestamp, description: 'the start of the UTC day the device was last used (kept to the day, no finer)' })
}, { additionalProperties: false })
export const ListDevicesReply = Type.Object({ devices: Type.Array(DeviceInfo) })

const listDevicesRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/v1/devices', {
    schema: {
      summary: 'Your devices',
      tags: ['devices'],
      security: bearer,
      response: { 200: ListDevicesReply, ...errorReplies(401) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const devices = await listDevices(fastify.db, request.user.id)
    return { devices: devices.map(device => ({ ...device, created: iso(device.created), lastSeen: iso(device.lastSeen) })) }
  })
}

export default listDevicesRoute
