import cors from '@fastify/cors'
import fp from 'fastify-plugin'

// Closed by default: without CORS_ORIGINS no CORS header is ever sent, so browsers keep
// other sites' pages from calling the API. Native clients do not care either way.

export default fp(async function corsPlugin (fastify) {
  const origins = fastify.config.corsOrigins
  if (origins.length === 0) return
  await fastify.register(cors, {
    origin: origins.includes('*') ? '*' : origins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['Retry-After', 'X-Request-Id', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'],
    maxAge: 600,
    // a malformed preflight gets the plain 204 without CORS headers rather than a text/plain 400
    strictPreflight: false
  })
}, { name: 'cors', dependencies: ['config'] })
