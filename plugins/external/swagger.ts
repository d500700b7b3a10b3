import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import { catalogue } from '../../errors.js'
import { asyncApiDocument } from '../../routes/realtime/asyncapi.js'
import { ASYNCAPI_PATH } from '../../routes/realtime/protocol.js'

// OpenAPI 3 generated from the routes' TypeBox schemas: /docs (UI) and /docs/json; beside
// it, the WebSocket as AsyncAPI 3.0 (/docs/asyncapi.json), made from the frames' schemas.

const VERSION = '1.0.0'

/** The error catalogue as a Markdown table: every code a client may meet, from errors.ts. */
function errorCodes (): string {
  const rows = catalogue.map(({ code, statusCode, message }) =>
    `| \`${code}\` | ${statusCode} | ${message === '%s' ? '(what was wrong)' : message.replace(/%[sd]/g, '…').replaceAll('|', '\\|')} |`)
  return ['| code | status | message |', '| --- | --- | --- |', ...rows].join('\n')
}

const words = (text: string): string[] => text.split(/[^A-Za-z0-9]+/).filter(word => word !== '')
const pascal = (parts: string[]): string => parts.map(word => word[0]?.toUpperCase() + word.slice(1)).join('')

/**
 * Every operation's id, derived from its route in one place: the original API's one-segment
 * paths name their action (`/send_message` is sendMessage, `/login` login); the others are
 * the method and the path (`GET /v1/keys/:username/:deviceId` is getV1KeysByUsernameByDeviceId).
 * A route may still set its own `operationId`; redocly's operation-operationId-unique rule
 * (test/openapi-lint.test.ts) catches a clash.
 */
export function operationId (method: string, url: string): string {
  const segments = url.split('/').filter(segment => segment !== '')
  if (segments.length === 1 && !segments[0]?.startsWith(':')) {
    const [first = '', ...rest] = words(segments[0] ?? '')
    return first.toLowerCase() + pascal(rest)
  }
  return method.toLowerCase() + pascal(segments.flatMap(segment => segment.startsWith(':') ? ['by', ...words(segment)] : words(segment)))
}

/**
 * A query parameter with a default may be left out (validation fills it in), so the document
 * must not call it required, or generated clients make every caller pass it.
 */
function optionalDefaults (querystring: unknown): unknown {
  if (typeof querystring !== 'object' || querystring === null) return querystring
  const { required, properties } = querystring as { required?: string[], properties?: Record<string, { default?: unknown }> }
  if (required === undefined || properties === undefined) return querystring
  return { ...querystring, required: required.filter(name => properties[name]?.default === undefined) }
}

export default fp(async function swaggerPlugin (fastify) {
  await fastify.register(swagger, {
    transform: ({ schema, url, route }) => {
      if (schema === undefined) return { schema, url }
      const documented = { ...schema, querystring: optionalDefaults(schema.querystring) }
      if ('operationId' in schema) return { schema: documented, url }
      return { schema: { ...documented, operationId: operationId([route.method].flat()[0] ?? 'GET', url) }, url }
    },
    openapi: {
      openapi: '3.1.0',
      // the origin the document was fetched from: true of any deployment, whatever its name
      servers: [{ url: '/', description: 'this server (the origin that served this document)' }],
      info: {
        title: 'CryptaChat Server',
        version: VERSION,
        description: 'Relay for end-to-end-encrypted chat. The server stores public keys and encrypted blobs; it never sees plaintext. ' +
          'Every error is `{ statusCode, error, message, code }`. ' +
          'Messages and contact events can be received three ways: polling GET /get_messages, long-polling GET /sync, ' +
          `or the WebSocket GET /ws (not an OpenAPI operation: see GET /sync for the protocol, and the AsyncAPI 3.0 document at ${ASYNCAPI_PATH} for every frame it sends).\n\n` +
          '**Error codes.** `code` is one of these; a WebSocket sends the same codes in its error frame before it closes.\n\n' +
          errorCodes()
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The token returned by POST /login.' },
          adminToken: { type: 'http', scheme: 'bearer', description: 'The ADMIN_TOKEN setting (the admin API exists only when it is set).' }
        }
      },
      tags: [
        { name: 'accounts', description: 'Registration, login, logout, password change and account deletion' },
        { name: 'devices', description: 'Several devices per account, each with its own token and event stream (docs/devices.md)' },
        { name: 'keys', description: 'Public key directory: one opaque key per account (upload_key, get_key), and Signal-compatible identity keys and prekey bundles per device (/v1/keys)' },
        { name: 'contacts', description: 'Chat requests, contacts and blocks: nobody can message you until you accept, and a block is never revealed' },
        { name: 'messages', description: 'Encrypted messages, stored once per party' },
        { name: 'realtime', description: 'One cursor across all conversations: GET /sync (with long-poll) and the WebSocket GET /ws, both described under GET /sync' },
        { name: 'health', description: 'Probes for orchestrators' },
        { name: 'admin', description: 'Operator API behind the web console at /admin (only when ADMIN_TOKEN is set)' }
      ]
    }
  })
  // The UI gets its own CSP in place of helmet's: the plugin's, less upgrade-insecure-requests,
  // which would break the page on a server reached over plain HTTP on a LAN.
  const asyncApi = JSON.stringify(asyncApiDocument(VERSION))
  fastify.get(ASYNCAPI_PATH, { schema: { hide: true } }, async (_request, reply) => await reply.type('application/json; charset=utf-8').send(asyncApi))
  await fastify.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: header => header.replace(/ *upgrade-insecure-requests;?/, '').trim()
  })
}, { name: 'swagger' })
