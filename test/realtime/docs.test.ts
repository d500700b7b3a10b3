import t from 'tap'
import { build } from '../helper.js'

t.test('the OpenAPI document describes /sync, /ack_messages and the WebSocket protocol, and does not list /ws', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.ok(doc.paths['/sync']?.get, 'GET /sync')
  t.ok(doc.paths['/ack_messages']?.post, 'POST /ack_messages')
  t.notOk(doc.paths['/ws'], 'WebSocket routes are not OpenAPI operations')
  const description: string = doc.paths['/sync'].get.description
  for (const words of ['GET /ws', 'Sec-WebSocket-Protocol: bearer', '4401', '4410', 'CURSOR_EXPIRED', 'get_messages', 'key_changed', 'expired_undelivered']) {
    t.ok(description.includes(words), `the protocol mentions ${words}`)
  }
  t.ok(doc.tags.some((tag: { name: string }) => tag.name === 'realtime'))
  t.match(doc.paths['/sync'].get.responses, { 200: {}, 400: {}, 401: {}, 410: {} })
  t.match(doc.paths['/send_message'].post.requestBody.content['application/json'].schema.properties, { client_msg_id: { type: 'string' } })
})
