import helmet from '@fastify/helmet'
import fp from 'fastify-plugin'

// Security headers on every reply. The API only ever answers JSON, so the strict default
// CSP costs nothing; the Swagger UI under /docs sends its own (staticCSP in swagger.ts).

export default fp(async function helmetPlugin (fastify) {
  await fastify.register(helmet, { global: true })
}, { name: 'helmet' })
