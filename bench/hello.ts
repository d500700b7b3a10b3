import Fastify from 'fastify'

// The ceiling: a bare Fastify hello-world on the same machine, answering what the
// framework alone costs. Listens on PORT and prints nothing.

const fastify = Fastify()
fastify.get('/', async () => ({ hello: 'world' }))
await fastify.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
