import fp from 'fastify-plugin'

// While the server closes, answers go out with `Connection: close`, so that keep-alive
// connections of requests still in flight end with their response instead of holding
// the shutdown open until their idle timeout.

export default fp(async function shutdownPlugin (fastify) {
  let closing = false
  fastify.addHook('preClose', async () => { closing = true })
  fastify.addHook('onSend', async (request, reply) => {
    if (closing) reply.header('connection', 'close')
  })
}, { name: 'shutdown' })
