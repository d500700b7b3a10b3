import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { IncomingHttpHeaders } from 'node:http'
import { MissingToken, UpgradeRequired } from '../../errors.js'
import type { ConnectionCaps } from './connection-caps.js'
import { Connection } from './connection.js'

export const WsQuery = Type.Object({
  since: Type.Optional(Type.String({ maxLength: 40, pattern: '^([0-9]{1,15}-[0-9]{1,15})?$' })),
  token: Type.Optional(Type.String({ maxLength: 4096 }))
})

// X-HIDDEN (@fastify/swagger's hidden tag): not an OpenAPI operation; its protocol is described under GET /sync
const WsSchema: { querystring: typeof WsQuery, tags: string[] } = { querystring: WsQuery, tags: ['X-HIDDEN'] }

/** The token from `Sec-WebSocket-Protocol: bearer, <jwt>`, `?token=` or `Authorization: Bearer <jwt>`. */
function tokenOf (headers: IncomingHttpHeaders, query: { token?: string | undefined }): string | undefined {
  const protocols = (headers['sec-websocket-protocol'] ?? '').split(',').map(p => p.trim())
  const index = protocols.indexOf('bearer')
  if (index !== -1 && protocols[index + 1]) return protocols[index + 1]
  if (query.token) return query.token
  return /^Bearer +(\S+) *$/.exec(headers.authorization ?? '')?.[1]
}

const ws: FastifyPluginAsyncTypebox<{ caps: ConnectionCaps }> = async (fastify, { caps }) => {
  const { webSocket } = fastify.config
  const options = {
    pingIntervalMs: Math.min(webSocket.pingIntervalSeconds * 1000, 2 ** 31 - 1),
    bufferLimit: webSocket.bufferLimit,
    drainTimeoutMs: Math.min(webSocket.drainTimeoutSeconds * 1000, 2 ** 31 - 1)
  }

  fastify.route({
    method: 'GET',
    url: '/ws',
    schema: WsSchema,
    // authenticated and counted before the upgrade: a bad token gets its HTTP 401, a client at
    // a cap its HTTP 429, and no socket
    preValidation: async (request, reply) => {
      const token = tokenOf(request.headers, request.query as typeof WsQuery.static)
      if (token === undefined) throw new MissingToken()
      const session = await fastify.verifyToken(token)
      request.user = session.user
      request.token = session.token
      request.device = session.device
      // a plain GET (no upgrade) holds nothing: it gets its 426 and ends
      if (!request.ws) return
      // released when the connection ends, however it ends: a close, a drop, a refused upgrade
      const release = caps.hold(request, reply)
      const { socket } = request.raw
      // a peer gone during the token check has closed already: its 'close' will not come again
      if (socket.destroyed) release()
      else socket.once('close', release)
    },
    wsHandler: async (socket, request) => {
      const token = tokenOf(request.headers, request.query) ?? ''
      const verify = async (): Promise<unknown> => await fastify.verifyToken(token)
      await new Connection(fastify, socket, { user: request.user, deviceKey: request.device.key }, request.token, verify, options, request.log).start(request.query.since)
    },
    // a plain HTTP request (no Upgrade): a JSON error rather than an empty 404
    handler: async () => { throw new UpgradeRequired() }
  })
}

export default ws
