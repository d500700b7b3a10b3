import { Ajv } from 'ajv'
import t from 'tap'
import type { EventType } from '../db/events.js'
import { operationId } from '../plugins/external/swagger.js'
import { ADMIN_TOKEN, build, call } from './helper.js'
import { Client, listen, pair, send } from './realtime-helper.js'

// The OpenAPI document at /docs/json (and its UI at /docs): every route documented with its
// schemas, tag, security and answers; the WebSocket protocol described in prose, and as an
// AsyncAPI document at /docs/asyncapi.json with every frame the server can send.

// Every event type the server stores (db/events.ts): the type check fails while one is missing here.
const STORED: Record<EventType, true> = {
  message: true,
  chat_request: true,
  chat_accepted: true,
  chat_declined: true,
  request_cancelled: true,
  contact_removed: true,
  key_changed: true,
  delivered: true,
  expired_undelivered: true,
  envelope: true,
  contact_deleted: true,
  devices_changed: true,
  prekeys_low: true
}
const FRAMES = [...Object.keys(STORED), 'ready', 'error']

const ENDPOINTS = {
  '/register': 'post',
  '/login': 'post',
  '/upload_key': 'post',
  '/get_key': 'get',
  '/request_chat': 'post',
  '/get_chat_requests': 'get',
  '/accept_chat': 'post',
  '/get_contacts': 'get',
  '/send_message': 'post',
  '/get_messages': 'get'
}
const PUBLIC = new Set(['/register', '/login', '/healthz', '/readyz'])
const LIFECYCLE = ['/logout', '/change_password', '/delete_account', '/decline_chat', '/cancel_request', '/block_user', '/unblock_user', '/get_blocked', '/remove_contact']

t.test('/docs/json documents every endpoint with its schemas, tag, security and responses', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.match(doc.openapi, /^3\./)
  t.ok(doc.components.securitySchemes.bearerAuth)
  for (const [path, method] of Object.entries(ENDPOINTS)) {
    const op = doc.paths[path]?.[method]
    t.ok(op, `${method.toUpperCase()} ${path} is documented`)
    t.type(op.summary, 'string', `${path} has a summary`)
    t.ok(op.tags?.length > 0, `${path} has a tag`)
    t.ok(op.responses['200'] ?? op.responses['201'], `${path} documents its success`)
    t.ok(Object.keys(op.responses).some(s => s.startsWith('4')), `${path} documents its errors`)
    if (method === 'post') t.ok(op.requestBody?.content['application/json']?.schema?.properties, `${path} has a request schema`)
    if (PUBLIC.has(path)) t.same(op.security, [], `${path} is public, and says so`)
    else t.same(op.security, [{ bearerAuth: [] }], `${path} needs a bearer token`)
  }
  t.same(doc.paths['/get_messages'].get.parameters.map((p: { name: string }) => p.name).sort(), ['limit', 'since_id', 'username'])
  // a parameter with a default may be left out: generated clients must not have to pass it
  const required = (path: string): string[] => doc.paths[path].get.parameters.filter((p: { required?: boolean }) => p.required === true).map((p: { name: string }) => p.name)
  t.same(required('/get_messages'), ['username'], 'only username is required of get_messages')
  t.same(required('/sync'), [], 'nothing is required of sync')
  t.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode < 400, true, 'the UI is served')
})

t.test('/docs/json documents every route with a summary, a tag, its security and its statuses', async t => {
  const app = await build(t)
  const doc = (await app.inject({ url: '/docs/json' })).json()
  const tags = new Set(doc.tags.map((tag: { name: string }) => tag.name))
  for (const path of LIFECYCLE) t.ok(doc.paths[path], `${path} is documented`)
  for (const [path, item] of Object.entries<Record<string, { summary?: string, tags?: string[], security?: unknown[], responses: Record<string, unknown> }>>(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const name = `${method.toUpperCase()} ${path}`
      t.ok(operation.summary, `${name} has a summary`)
      t.ok(operation.tags?.length === 1 && tags.has(operation.tags[0]), `${name} has a declared tag`)
      const statuses = Object.keys(operation.responses)
      t.ok(statuses.some(status => status.startsWith('2')), `${name} documents its success`)
      t.ok(Array.isArray(operation.security), `${name} declares its security ([] when public)`)
      if (operation.security?.length !== 0) t.ok(statuses.includes('401'), `${name} is protected and documents 401`)
      if (method === 'post') t.ok(statuses.includes('400') && statuses.includes('413') && statuses.includes('415'), `${name} documents 400, 413 and 415`)
    }
  }
  const open = Object.entries<Record<string, { security?: unknown[] }>>(doc.paths)
    .filter(([, item]) => Object.values(item).some(operation => operation.security?.length === 0)).map(([path]) => path)
  t.same(open.sort(), [...PUBLIC].sort(), 'exactly the public routes say `security: []`')
  for (const path of LIFECYCLE) {
    const operation = Object.values<{ security?: unknown[] }>(doc.paths[path])[0]
    t.same(operation?.security, [{ bearerAuth: [] }], `${path} needs a bearer token`)
  }
})

t.test('the OpenAPI document describes /sync, /ack_messages and the WebSocket protocol, and does not list /ws', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.ok(doc.paths['/sync']?.get, 'GET /sync')
  t.ok(doc.paths['/ack_messages']?.post, 'POST /ack_messages')
  t.notOk(doc.paths['/ws'], 'WebSocket routes are not OpenAPI operations')
  const description: string = doc.paths['/sync'].get.description
  for (const words of ['GET /ws', 'Sec-WebSocket-Protocol: bearer', '4401', '4410', 'CURSOR_EXPIRED', 'get_messages', 'key_changed', 'request_cancelled', 'expired_undelivered']) {
    t.ok(description.includes(words), `the protocol mentions ${words}`)
  }
  t.ok(doc.tags.some((tag: { name: string }) => tag.name === 'realtime'))
  t.match(doc.paths['/sync'].get.responses, { 200: {}, 400: {}, 401: {}, 410: {} })
  t.match(doc.paths['/send_message'].post.requestBody.content['application/json'].schema.properties, { client_msg_id: { type: 'string' } })
})

t.test('every operation has an id derived from its route: the action of a one-segment path, else the method and the path', async t => {
  t.equal(operationId('POST', '/send_message'), 'sendMessage')
  t.equal(operationId('GET', '/healthz'), 'healthz')
  t.equal(operationId('GET', '/v1/keys/:username/:deviceId'), 'getV1KeysByUsernameByDeviceId')
  t.equal(operationId('DELETE', '/admin/api/users/:username'), 'deleteAdminApiUsersByUsername')
  t.equal(operationId('GET', '/:id'), 'getById', 'a lone parameter is not an action')
  const app = await build(t, { ADMIN_TOKEN })
  const doc = (await app.inject({ url: '/docs/json' })).json()
  const ids: string[] = []
  for (const [path, item] of Object.entries<Record<string, { operationId: string }>>(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      t.equal(operation.operationId, operationId(method, path.replace(/\{([^}]+)\}/g, ':$1')), `${method.toUpperCase()} ${path}: ${operation.operationId}`)
      ids.push(operation.operationId)
    }
  }
  t.equal(new Set(ids).size, ids.length, 'no two alike')
  t.ok(ids.includes('getAdminApiStats'), 'the admin API too')
})

t.test('the AsyncAPI document describes /ws: its authentication, every frame the server can send and the close codes', async t => {
  const app = await build(t)
  const res = await app.inject({ url: '/docs/asyncapi.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const doc = res.json()
  t.equal(doc.asyncapi, '3.0.0')
  const channel = doc.channels.events
  t.equal(channel.address, '/ws')
  t.same(Object.keys(doc.components.messages).sort(), [...FRAMES].sort(), 'one message per frame type, and no other')
  for (const type of FRAMES) {
    const message = doc.components.messages[type]
    t.equal(message.payload.properties.type.const, type, `${type}: its payload schema`)
    t.ok(message.summary.length > 20, `${type}: says what it means`)
    t.same(channel.messages[type], { $ref: `#/components/messages/${type}` }, `${type}: on the channel`)
    t.ok(doc.operations.sendEvents.messages.some((m: { $ref: string }) => m.$ref === `#/channels/events/messages/${type}`), `${type}: sent by the server`)
  }
  t.equal(doc.operations.sendEvents.action, 'send', 'the document speaks for the server: it sends the frames')
  for (const words of ['Sec-WebSocket-Protocol: bearer, <token>', '?token=<token>', 'Authorization: Bearer', '| 4401 |', '| 4410 |', '| 1001 |', '| 1011 |', 'CURSOR_EXPIRED']) {
    t.ok(channel.description.includes(words), `the channel mentions ${words}`)
  }
  t.same(Object.keys(channel.bindings.ws.query.properties).sort(), ['since', 'token'])
  t.same(Object.keys(doc.components.securitySchemes).sort(), ['bearerAuth', 'tokenQuery'])

  const openapi = (await app.inject({ url: '/docs/json' })).json()
  t.ok(openapi.info.description.includes('/docs/asyncapi.json'), 'the OpenAPI document points at it')
  const sync: string = openapi.paths['/sync'].get.description
  for (const type of Object.keys(STORED)) t.ok(sync.includes(`- \`${type}\`: `), `GET /sync lists ${type}`)
})

t.test('what a real socket receives matches the AsyncAPI document\'s schemas, the closing error frame and code included', async t => {
  const app = await build(t)
  const doc = (await app.inject({ url: '/docs/asyncapi.json' })).json()
  const ajv = new Ajv({ strict: false })
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  await send(app, alice, bob)
  const socket = await Client.open(base, bob.token)
  t.teardown(async () => { await socket.close() })
  await socket.until('ready')
  t.equal((await call(app, alice.token, { method: 'POST', url: '/remove_contact', payload: { username: 'bob' } })).statusCode, 200)
  await socket.until('contact_removed')
  t.equal((await call(app, bob.token, { method: 'POST', url: '/logout' })).statusCode, 200)
  const { code } = await socket.closed
  t.same(socket.frames.map(frame => frame.type), ['chat_request', 'chat_accepted', 'message', 'ready', 'contact_removed', 'error'])
  for (const frame of socket.frames) {
    const validate = ajv.compile(doc.components.messages[frame.type].payload)
    t.ok(validate(frame), `${frame.type}: as the document says ${JSON.stringify(validate.errors)}`)
  }
  t.equal(code, 4401)
  t.ok(doc.channels.events.description.includes(`| ${code} | the session ended`), 'the close code is described')
})

t.test('unknown routes are JSON 404s', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope?x=<script>' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { statusCode: 404, error: 'Not Found', code: 'ROUTE_NOT_FOUND' })
})
