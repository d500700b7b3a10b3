import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

// OpenAPI 3 generated from the routes' TypeBox schemas: /docs (UI) and /docs/json.

export default fp(async function swaggerPlugin (fastify) {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'CryptaChat Server',
        version: '1.0.0',
        description: 'Relay for end-to-end-encrypted chat. The server stores public keys and encrypted blobs; it never sees plaintext. ' +
          'Every error is `{ statusCode, error, message, code }`. ' +
          'Messages and contact events can be received three ways: polling GET /get_messages, long-polling GET /sync, ' +
          'or the WebSocket GET /ws (not listed here: see GET /sync for its protocol).'
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The token returned by POST /login.' }
        }
      },
      tags: [
        { name: 'accounts', description: 'Registration and login' },
        { name: 'keys', description: 'Public key directory' },
        { name: 'contacts', description: 'Chat requests and contacts: nobody can message you until you accept' },
        { name: 'messages', description: 'Encrypted messages, stored once per party' },
        { name: 'realtime', description: 'One cursor across all conversations: GET /sync (with long-poll) and the WebSocket GET /ws, both described under GET /sync' },
        { name: 'health', description: 'Probes for orchestrators' }
      ]
    }
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs' })
}, { name: 'swagger' })
