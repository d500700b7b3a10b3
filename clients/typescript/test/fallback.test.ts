import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import { befriend, Inbox, MemoryCursor, ServerProcess, user } from './server.js'

// When the WebSocket cannot connect (a proxy that refuses upgrades, here a local HTTP server
// that answers every upgrade with 403), the subscription long-polls GET /sync on the real server.

let server: ServerProcess
let refuser: Server
let upgrades = 0
before(async () => {
  server = await ServerProcess.start()
  refuser = createServer((_request, response) => { response.writeHead(404).end() })
  refuser.on('upgrade', (_request, socket) => {
    upgrades++
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
  })
  refuser.listen(0, '127.0.0.1')
  await once(refuser, 'listening')
})
after(async () => {
  refuser.close()
  await server.close()
})

test('a refused WebSocket falls back to long-polls: every message arrives once, in order', async (t) => {
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob')
  await befriend(alice, bob)
  const { port } = refuser.address() as { port: number }
  const inbox = new Inbox()
  const cursor = new MemoryCursor()
  const states: string[] = []
  const errors: unknown[] = []
  const sub = bob.client.subscribe({
    cursor,
    onEvent: inbox.onEvent,
    WebSocket,
    webSocketUrl: `ws://127.0.0.1:${port}/ws`,
    webSocketRetryMs: 300,
    pollTimeout: 1,
    onStateChange: state => states.push(state),
    onError: (error, fatal) => { errors.push(error); assert.equal(fatal, false) }
  })
  await inbox.until('chat_accepted', events => events.some(e => e.type === 'chat_accepted'))
  const sent: number[] = []
  for (let i = 0; i < 6; i++) {
    sent.push((await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: `s${i}`, recipient_blob: `r${i}` })).id)
    await new Promise(resolve => setTimeout(resolve, 150))
  }
  await inbox.until('six messages', () => inbox.messages().length === 6)
  assert.deepEqual(inbox.messages().map(m => m.id), sent)
  assert.ok(states.includes('polling'))
  assert.ok(!states.includes('live'), 'never live over a socket')
  assert.ok(upgrades >= 2, `the socket was tried again while polling (${upgrades} upgrades)`)
  assert.ok(errors.length > 0, 'each refusal is reported')
  assert.equal(cursor.value, inbox.events.at(-1)?.cursor)

  // close() ends a waiting long-poll at once
  const closing = Date.now()
  await sub.close()
  assert.ok(Date.now() - closing < 1000)
  assert.equal(sub.state, 'closed')
})

test('without a WebSocket (WebSocket: null, or none global as in Node 20) the subscription long-polls', async (t) => {
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob')
  await befriend(alice, bob)
  const inbox = new Inbox()
  const sub = bob.client.subscribe({ cursor: new MemoryCursor(), onEvent: inbox.onEvent, WebSocket: null, pollTimeout: 5 })
  await inbox.until('chat_accepted', events => events.some(e => e.type === 'chat_accepted'))
  assert.equal(sub.state, 'polling')
  const sent = await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: 's', recipient_blob: 'r' })
  const started = Date.now()
  await inbox.until('the message', () => inbox.messages().some(m => m.id === sent.id))
  assert.ok(Date.now() - started < 2000, 'a waiting long-poll answers as soon as the message is stored')
  await sub.close()
})
