import { once } from 'node:events'
import http from 'node:http'
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { bearer, build } from '../helper.js'
import { Client, listen, pair, send, sync } from '../realtime-helper.js'

// REQUEST_TIMEOUT and HEADERS_TIMEOUT bound how long a client may take to send a request,
// on a real socket (Node enforces them, app.inject() never meets them). Short settings here;
// what is asserted is what the server does (408, connection closed), not how long it took.

const SHORT = { REQUEST_TIMEOUT: '2s', HEADERS_TIMEOUT: '1s' }

/** Opens a raw connection, writes `head`, then one more byte of `drip` every 300 ms until the server closes; everything the server sent. */
async function trickle (t: Test, port: number, head: string, drip: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  let received = ''
  socket.on('data', chunk => { received += String(chunk) })
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(head)
  let sent = 0
  const timer = setInterval(() => { if (sent < drip.length && socket.writable) socket.write(drip[sent++] ?? '') }, 300)
  await once(socket, 'close')
  clearInterval(timer)
  if (drip !== '') t.ok(sent < drip.length, 'cut before the client had sent it all')
  return received
}

t.test('a body sent byte by byte is cut with a 408 at REQUEST_TIMEOUT', async t => {
  const app = await build(t, SHORT)
  const { port } = new URL((await listen(app)).replace('ws:', 'http:'))
  const body = JSON.stringify({ username: 'alice', password: 'correct horse battery' })
  const received = await trickle(t, Number(port), `POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body)
  t.match(received, /^HTTP\/1\.1 408 /, 'answered 408 Request Timeout, then closed')
})

t.test('headers sent byte by byte are cut with a 408 at HEADERS_TIMEOUT', async t => {
  const app = await build(t, SHORT)
  const { port } = new URL((await listen(app)).replace('ws:', 'http:'))
  const received = await trickle(t, Number(port), 'GET /healthz HTTP/1.1\r\n', 'Host: localhost\r\nX-Padding: ' + 'a'.repeat(100) + '\r\n\r\n')
  t.match(received, /^HTTP\/1\.1 408 /)
})

t.test('a connection that says nothing is closed', async t => {
  const app = await build(t, SHORT)
  const { port } = new URL((await listen(app)).replace('ws:', 'http:'))
  const received = await trickle(t, Number(port), '', '')
  t.match(received, /^HTTP\/1\.1 408 /, 'answered 408, then closed')
})

t.test('an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT', async t => {
  const app = await build(t, { ...SHORT, KEEP_ALIVE_TIMEOUT: '1s' })
  const { port } = new URL((await listen(app)).replace('ws:', 'http:'))
  const received = await trickle(t, Number(port), 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n', '')
  t.match(received, /^HTTP\/1\.1 200 /, 'answered, kept alive, then closed by the server')
  t.match(received, /keep-alive: timeout=1/i)
})

t.test('a /sync long-poll and a WebSocket outlive REQUEST_TIMEOUT: waiting for an answer is not sending a request', async t => {
  const app = await build(t, SHORT)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const socket = await Client.open(base, bob.token)
  await socket.until('ready')
  const { next } = await sync(t, app, alice.token)
  // 5 s of waiting: past both bounds, and five of Node's checks for expired requests
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get(`${base.replace('ws:', 'http:')}/sync?timeout=5&since=${encodeURIComponent(next)}`, { headers: bearer(alice.token), agent: false }, resolve).on('error', reject)
  })
  let text = ''
  for await (const chunk of res) text += String(chunk)
  t.equal(res.statusCode, 200, 'the long-poll got its answer')
  t.match(JSON.parse(text), { events: [] }, 'after waiting its whole timeout')
  t.equal(socket.ws.readyState, socket.ws.OPEN, 'the socket is still open')
  t.equal((await send(app, alice, bob)).statusCode, 201)
  t.match(await socket.until('message'), [{ type: 'message' }], 'and still delivers')
  await socket.close()
})
