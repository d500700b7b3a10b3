import t from 'tap'
import { build } from './helper.js'

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
    if (PUBLIC.has(path)) t.notOk(op.security, `${path} is public`)
    else t.same(op.security, [{ bearerAuth: [] }], `${path} needs a bearer token`)
  }
  t.same(doc.paths['/get_messages'].get.parameters.map((p: { name: string }) => p.name).sort(), ['limit', 'since_id', 'username'])
  t.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode < 400, true, 'the UI is served')
})

t.test('unknown routes are JSON 404s', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope?x=<script>' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { statusCode: 404, error: 'Not Found', code: 'ROUTE_NOT_FOUND' })
})
