import websocket from '@fastify/websocket'
import fp from 'fastify-plugin'

// WebSockets for GET /ws. Browsers cannot set an Authorization header on a WebSocket, so
// the token may come as the subprotocol pair `bearer, <jwt>`: the server then answers
// with `bearer` (it must pick one of the offered subprotocols).

export default fp(async function websocketPlugin (fastify) {
  await fastify.register(websocket, {
    options: {
      // clients only listen: what they send is ignored, so keep it small
      maxPayload: 4096,
      handleProtocols: (protocols) => protocols.has('bearer') ? 'bearer' : false
    },
    errorHandler (error, socket, request) {
      // a peer that vanishes mid-frame is routine, not a server fault
      request.log.debug({ err: error }, 'websocket error')
      socket.terminate()
    },
    preClose (done) {
      for (const client of fastify.websocketServer.clients) client.close(1001, 'server shutting down')
      fastify.websocketServer.close(() => done())
    }
  })
}, { name: 'websocket' })
