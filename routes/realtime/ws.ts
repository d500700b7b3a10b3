import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { IncomingHttpHeaders } from 'node:http'
import { MissingToken } from '../errors.js'
import { Connection } from './connection.js'

export const WsQuery = Type.Object({
  since: Type.Optional(Type.String({ maxLength: 40, pattern: '^([0-9]{1,15}-[0-9]{1,15})?$' })),
  token: Type.Optional(Type.String({ maxLength: 4096 }))
})

/** The token from `Sec-WebSocket-Protocol: bearer, <jwt>`, `?token=` or `Authorization: Bearer <jwt>`. */
function tokenOf (headers: IncomingHttpHeaders, query: { token?: string | undefined }): string | undefined {
  const protocols = (headers['sec-websocket-protocol'] ?? '').split(',').map(p => p.trim())
  const index = protocols.indexOf('bearer')
  if (index !== -1 && protocols[index + 1]) return protocols[index + 1]
  if (query.token) return query.token
  return /^Bearer +(\S+) *$/.exec(headers.authorization ?? '')?.[1]
}

const ws: FastifyPluginAsyncTypebox = async (fastify) => {
  const { webSocket } = fastify.config
  const options = {
    pingIntervalMs: Math.min(webSocket.pingIntervalSeconds * 1000, 2 ** 31 - 1),
    bufferLimit: webSocket.bufferLimit,
    drainTimeoutMs: Math.min(webSocket.drainTimeoutSeconds * 1000, 2 ** 31 - 1)
  }

  fastify.get('/ws', {
    websocket: true,
    schema: { querystring: WsQuery },
    // authenticated before the upgrade: a bad token gets its HTTP 401, no socket
    preValidation: async (request) => {
      const token = tokenOf(request.headers, request.query as typeof WsQuery.static)
      if (token === undefined) throw new MissingToken()
      const session = await fastify.verifyToken(token)
      request.user = session.user
      request.token = session.token
    }
  }, async (socket, request) => {
    await new Connection(fastify, socket, request.user, request.token, options, request.log).start(request.query.since)
  })
}

export default ws
