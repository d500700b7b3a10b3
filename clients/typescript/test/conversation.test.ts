import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import type { MessageEvent } from '../src/index.js'
import { befriend, Inbox, MemoryCursor, ServerProcess, user } from './server.js'

// A whole conversation between two users against a real server process: subscriptions over
// WebSocket, messages both ways, acks, a server restart in the middle, a send whose answer is lost.

let server: ServerProcess
before(async () => { server = await ServerProcess.start() })
after(async () => { await server.close() })

test('two users talk over their subscriptions, through a server restart, and nothing is lost or doubled', async (t) => {
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob')
  await befriend(alice, bob)

  const aliceInbox = new Inbox()
  const bobInbox = new Inbox()
  const bobCursor = new MemoryCursor()
  const bobStates: string[] = []
  const aliceSub = alice.client.subscribe({ cursor: new MemoryCursor(), onEvent: aliceInbox.onEvent, WebSocket })
  const bobSub = bob.client.subscribe({ cursor: bobCursor, onEvent: bobInbox.onEvent, WebSocket, onStateChange: s => bobStates.push(s), backoff: { initialMs: 100, maxMs: 1000 } })

  // the contact events came over the socket (replayed from the oldest kept event)
  await bobInbox.until('chat_accepted', events => events.some(e => e.type === 'chat_accepted'))
  await aliceInbox.until('chat_accepted', events => events.some(e => e.type === 'chat_accepted'))
  // the `ready` frame follows the replay, and a loaded machine may read it a moment after its last event
  await bobInbox.until('bob live', () => bobSub.state === 'live')
  assert.equal(bobSub.state, 'live')

  // both ways; each side also sees its own message (its own copy)
  const first = await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: 'a1-for-alice', recipient_blob: 'a1-for-bob' })
  assert.match(first.client_msg_id, /^[0-9a-f-]{36}$/)
  await bobInbox.until('alice\'s message', () => bobInbox.messages().some(m => m.id === first.id))
  const reply = await bob.client.sendMessage({ recipient_username: alice.username, sender_blob: 'b1-for-bob', recipient_blob: 'b1-for-alice' })
  await aliceInbox.until('bob\'s reply', () => aliceInbox.messages().some(m => m.id === reply.id))
  assert.deepEqual(aliceInbox.messages(), [{ id: first.id, blob: 'a1-for-alice' }, { id: reply.id, blob: 'b1-for-alice' }])
  const aliceCopy = aliceInbox.events.find((e): e is MessageEvent => e.type === 'message' && e.message.id === first.id)
  assert.equal(aliceCopy?.message.client_msg_id, first.client_msg_id, 'the sender\'s copy carries its client_msg_id')

  // bob acknowledges: alice is told which of her messages were delivered
  const acked = await bob.client.ack({ up_to_id: first.id })
  assert.equal(acked.acknowledged, 1)
  await aliceInbox.until('delivered', events => events.some(e => e.type === 'delivered' && e.message_ids.includes(first.id)))

  // the server restarts: bob's socket closes (1001); alice sends while it is down-and-back
  const beforeRestart = bobInbox.messages().length
  await server.stop()
  await bobInbox.until('bob to notice', () => bobStates.at(-1) !== 'live', 10_000)
  await server.start()
  const during: number[] = []
  for (let i = 0; i < 5; i++) {
    during.push((await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: `s${i}`, recipient_blob: `r${i}` })).id)
  }
  await bobInbox.until('the messages sent around the restart', () => during.every(id => bobInbox.messages().some(m => m.id === id)))
  await bobInbox.until('bob live again', () => bobSub.state === 'live')
  const ids = bobInbox.messages().map(m => m.id)
  assert.equal(new Set(ids).size, ids.length, 'no message came twice')
  assert.deepEqual(ids.slice(beforeRestart), during, 'every message after the restart, in order')
  const cursors = bobInbox.events.map(e => e.cursor)
  assert.equal(new Set(cursors).size, cursors.length, 'no event came twice')
  assert.equal(bobCursor.value, bobInbox.events.at(-1)?.cursor, 'the stored cursor is the last event handled')

  // a send whose answer is lost: the library sends again with the same client_msg_id and the server stores it once
  let lost = 0
  const flaky = await user(t, server, 'carol', {
    fetch: async (input, init) => {
      const response = await fetch(input, init)
      if (new URL(input instanceof Request ? input.url : String(input)).pathname === '/send_message' && lost++ === 0) {
        throw new TypeError('fetch failed (the answer was lost)')
      }
      return response
    },
    retryBackoff: { initialMs: 10, maxMs: 10 }
  })
  await befriend(flaky, bob)
  const retried = await flaky.client.sendMessage({ recipient_username: bob.username, sender_blob: 'once-s', recipient_blob: 'once-r' })
  assert.equal(lost, 2, 'the send was tried twice')
  await bobInbox.until('carol\'s message', () => bobInbox.messages().some(m => m.id === retried.id))
  const again = await flaky.client.sendMessage({ recipient_username: bob.username, sender_blob: 'once-s', recipient_blob: 'once-r', client_msg_id: retried.client_msg_id })
  assert.equal(again.id, retried.id, 'the same client_msg_id answers the stored message')
  const history = await bob.client.api.GET('/get_messages', { params: { query: { username: flaky.username, since_id: 0, limit: 100 } } })
  assert.deepEqual(history.data?.messages.map(m => m.id), [retried.id], 'stored once')
  await new Promise(resolve => setTimeout(resolve, 300))
  assert.equal(bobInbox.messages().filter(m => m.blob === 'once-r').length, 1, 'received once')

  await Promise.all([aliceSub.close(), bobSub.close()])
  assert.equal(bobSub.state, 'closed')
  await Promise.all([alice.client.logout(), bob.client.logout(), flaky.client.logout()])
})

test('envelopes to a device (PUT /v1/messages) arrive on that device\'s stream and are acknowledged by id', async (t) => {
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob', {}, { registrationId: 4242 })
  assert.equal(bob.client.deviceId, 2, 'a login with a device adds one')
  await befriend(alice, bob)
  const inbox = new Inbox()
  const sub = bob.client.subscribe({ cursor: new MemoryCursor(), onEvent: inbox.onEvent, WebSocket })
  const aliceInbox = new Inbox()
  const aliceSub = alice.client.subscribe({ cursor: new MemoryCursor(), onEvent: aliceInbox.onEvent, WebSocket })

  const content = Buffer.from('ciphertext for bob\'s device 2').toString('base64')
  const sent = await alice.client.sendEnvelopes(bob.username, {
    messages: [{ type: 1, destinationDeviceId: 2, destinationRegistrationId: 4242, content }]
  })
  const retry = await alice.client.sendEnvelopes(bob.username, {
    messages: [{ type: 1, destinationDeviceId: 2, destinationRegistrationId: 4242, content }],
    client_msg_id: sent.client_msg_id
  })
  assert.equal(retry.id, sent.id, 'a retried send is the same send')
  await inbox.until('the envelope', events => events.some(e => e.type === 'envelope'))
  const envelopes = inbox.events.filter(e => e.type === 'envelope')
  assert.equal(envelopes.length, 1, 'one envelope, not two')
  assert.equal(envelopes[0]?.type === 'envelope' && envelopes[0].envelope.content, content)
  const ack = await bob.client.ack({ envelope_ids: [sent.id] })
  assert.equal(ack.acknowledged, 1)
  await aliceInbox.until('delivered to device 2', events => events.some(e => e.type === 'delivered' && e.device === 2 && e.message_ids.includes(sent.id)))
  await Promise.all([sub.close(), aliceSub.close()])
})

test('the global WebSocket (browsers, Node 22+) is used when none is given', async (t) => {
  if (!('WebSocket' in globalThis)) return t.skip(`Node ${process.version} has no global WebSocket (Node 22+ has)`)
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob')
  await befriend(alice, bob)
  const inbox = new Inbox()
  const sub = bob.client.subscribe({ cursor: new MemoryCursor(), onEvent: inbox.onEvent })
  await inbox.until('live', () => sub.state === 'live')
  const sent = await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: 's', recipient_blob: 'r' })
  await inbox.until('the message', () => inbox.messages().some(m => m.id === sent.id))
  await sub.close()
})

test('an event whose handler threw comes again, and the cursor never passed it', async (t) => {
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob')
  await befriend(alice, bob)
  const cursor = new MemoryCursor()
  const handled: number[] = []
  const cursorsAtFailure: Array<string | undefined> = []
  let failures = 0
  const errors: unknown[] = []
  const sub = bob.client.subscribe({
    cursor,
    WebSocket,
    backoff: { initialMs: 50, maxMs: 100 },
    onError: error => errors.push(error),
    onEvent: event => {
      if (event.type !== 'message') return
      if (event.message.encrypted_blob === 'r1' && failures++ < 2) {
        cursorsAtFailure.push(cursor.value)
        throw new Error('the app could not store it yet')
      }
      handled.push(event.message.id)
    }
  })
  const sent: number[] = []
  for (let i = 0; i < 3; i++) sent.push((await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: `s${i}`, recipient_blob: `r${i}` })).id)
  const inbox = new Inbox()
  await inbox.until('all three handled', () => handled.length >= 3)
  await new Promise(resolve => setTimeout(resolve, 300))
  assert.deepEqual(handled, sent, 'each once, in order, the failed one included')
  assert.equal(failures, 3, 'it failed twice, then was handled')
  assert.equal(cursorsAtFailure[0], cursorsAtFailure[1], 'the cursor stayed before the failed event')
  assert.ok(errors.some(e => e instanceof Error && e.message === 'the app could not store it yet'), 'reported to onError')
  await sub.close()
})
