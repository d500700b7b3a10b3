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
    // close every socket politely (a peer that does not answer within a second is cut)
    // before the database closes under their readers
    async preClose () {
      await Promise.all([...fastify.websocketServer.clients].map(async client => await new Promise<void>(resolve => {
        client.once('close', () => resolve())
        client.close(1001, 'server shutting down')
        setTimeout(() => client.terminate(), 1000).unref()
      })))
      await new Promise(resolve => fastify.websocketServer.close(resolve))
    }
  })
}, { name: 'websocket' })
