import type { TSchema } from '@sinclair/typebox'
import { FRAMES, frameType } from './events.js'
import { CLOSE_CODES } from './protocol.js'
import { WsQuery } from './ws.js'

// GET /ws as an AsyncAPI 3.0 document (served at /docs/asyncapi.json beside the OpenAPI
// one): the channel, how to authenticate, every frame the server sends with the TypeBox
// schema it is checked against, and the close codes. All of it is made from the code.

/** A TypeBox schema as plain JSON Schema (TypeBox's symbol keys dropped). */
function plain (schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
}

const QUERY_DESCRIPTIONS: Record<keyof typeof WsQuery.properties, string> = {
  since: 'the cursor of the last event you processed; omit it to start from the oldest event kept',
  token: 'your token, when neither the `Sec-WebSocket-Protocol` pair nor an Authorization header can carry it'
}

const CONNECTION = `
Your device's event stream, pushed as JSON text frames. Connect with \`GET /ws?since=<cursor>\` and your token (from POST /login) in one of:
\`Sec-WebSocket-Protocol: bearer, <token>\` (what a browser can send: the server answers with the subprotocol \`bearer\`), \`?token=<token>\`,
or \`Authorization: Bearer <token>\`. A bad token gets its HTTP 401 and a client over its connection caps a 429 with \`retry-after\`, before any upgrade.

The server first replays the events after \`since\`, then sends \`ready\`, then each new event as it is stored. Every socket of a device gets every event
of its stream. What a client sends is ignored (a frame over 4 KiB closes the socket with 1009). The server pings every WS_PING_INTERVAL and drops a peer
that did not answer the previous ping, or that is too slow to read.

Before closing on purpose the server sends an \`error\` frame; the close code says what to do:

| close code | meaning |
| --- | --- |
${CLOSE_CODES.map(({ code, meaning }) => `| ${code} | ${meaning.replaceAll('|', '\\|')} |`).join('\n')}

On any close, reconnect with the cursor of the last event you processed: nothing is missed and nothing comes twice.
`.trim()

export function asyncApiDocument (version: string): Record<string, unknown> {
  const types = FRAMES.map(frameType)
  const query = plain(WsQuery) as { properties: Record<string, Record<string, unknown>> }
  for (const [name, description] of Object.entries(QUERY_DESCRIPTIONS)) query.properties[name] = { ...query.properties[name], description }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'CryptaChat Server real-time events',
      version,
      description: 'The WebSocket GET /ws. The HTTP API, GET /sync (the same events by long-poll) included, is described by the OpenAPI document at /docs/json.'
    },
    defaultContentType: 'application/json',
    channels: {
      events: {
        address: '/ws',
        title: 'Event stream',
        description: CONNECTION,
        messages: Object.fromEntries(types.map(type => [type, { $ref: `#/components/messages/${type}` }])),
        bindings: { ws: { method: 'GET', query, bindingVersion: '0.1.0' } }
      }
    },
    operations: {
      sendEvents: {
        action: 'send',
        channel: { $ref: '#/channels/events' },
        title: 'Push events',
        summary: 'What the server sends on the socket, in order: the replay, `ready`, then the live events; `error` before closing.',
        security: [
          { $ref: '#/components/securitySchemes/bearerAuth' },
          { $ref: '#/components/securitySchemes/tokenQuery' }
        ],
        messages: types.map(type => ({ $ref: `#/channels/events/messages/${type}` }))
      }
    },
    components: {
      messages: Object.fromEntries(FRAMES.map(schema => [frameType(schema), {
        name: frameType(schema),
        title: schema.title,
        summary: schema.description,
        contentType: 'application/json',
        payload: plain(schema)
      }])),
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'The token returned by POST /login, as `Authorization: Bearer <token>` or (in a browser) as the subprotocol pair `Sec-WebSocket-Protocol: bearer, <token>`.'
        },
        tokenQuery: { type: 'httpApiKey', name: 'token', in: 'query', description: 'The same token as `?token=<token>`.' }
      }
    }
  }
}
