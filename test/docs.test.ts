import t from 'tap'
import { build } from './helper.js'

// The OpenAPI document at /docs/json (and its UI at /docs): every route documented with its
// schemas, tag, security and answers; the WebSocket protocol described in prose.

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

t.test('unknown routes are JSON 404s', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope?x=<script>' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { statusCode: 404, error: 'Not Found', code: 'ROUTE_NOT_FOUND' })
})
