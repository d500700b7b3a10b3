import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import { ApiError, CryptaChatClient } from '../src/index.js'
import { befriend, Inbox, MemoryCursor, PASSWORD, ServerProcess, uniqueName, user } from './server.js'

// Sessions: renewal before the token expires (TOKEN_TTL=60s, the server's minimum), a session
// ended by the server (401, WebSocket close 4401), a cursor the server no longer knows (4410).

let server: ServerProcess
before(async () => { server = await ServerProcess.start({ TOKEN_TTL: '60s' }) })
after(async () => { await server.close() })

async function logoutFromElsewhere (token: string | undefined): Promise<void> {
  const response = await fetch(`${server.url}/logout`, { method: 'POST', headers: { authorization: `Bearer ${token ?? ''}` } })
  assert.equal(response.status, 200)
}

test('the token is renewed before it expires, for the same device, and the subscription goes on with it', async (t) => {
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob', { renewBeforeSeconds: 58 }, { registrationId: 77 })
  await befriend(alice, bob)
  assert.equal(bob.client.deviceId, 2)
  const firstToken = bob.client.token
  const inbox = new Inbox()
  const states: string[] = []
  const sub = bob.client.subscribe({ cursor: new MemoryCursor(), onEvent: inbox.onEvent, WebSocket, onStateChange: s => states.push(s) })
  await inbox.until('chat_accepted', events => events.some(e => e.type === 'chat_accepted'))
  const before = await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: 's0', recipient_blob: 'r0' })

  await inbox.until('the renewal', () => bob.client.token !== firstToken, 10_000)
  assert.ok(bob.logins() >= 2, 'through the credentials callback')
  assert.equal(bob.client.deviceId, 2, 'renewed as the same device, not a new one')
  const devices = await bob.client.api.GET('/v1/devices')
  assert.deepEqual(devices.data?.devices.map(d => d.id), [1, 2])
  await inbox.until('live again', () => states.filter(s => s === 'live').length >= 2 && sub.state === 'live')

  const afterRenewal = await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: 's1', recipient_blob: 'r1' })
  await inbox.until('the message sent after the renewal', () => inbox.messages().some(m => m.id === afterRenewal.id))
  assert.deepEqual(inbox.messages().map(m => m.id), [before.id, afterRenewal.id], 'each once')
  await sub.close()
  await bob.client.close()
})

test('a session ended by the server (close 4401, then a 401) is logged in again and the stream resumes', async (t) => {
  const alice = await user(t, server, 'alice')
  const bob = await user(t, server, 'bob')
  await befriend(alice, bob)
  const inbox = new Inbox()
  const sub = bob.client.subscribe({ cursor: new MemoryCursor(), onEvent: inbox.onEvent, WebSocket })
  await inbox.until('chat_accepted', events => events.some(e => e.type === 'chat_accepted'))
  await inbox.until('live', () => sub.state === 'live')

  await logoutFromElsewhere(bob.client.token)
  await inbox.until('a new login', () => bob.logins() === 2)
  const sent = await alice.client.sendMessage({ recipient_username: bob.username, sender_blob: 's', recipient_blob: 'r' })
  await inbox.until('the message', () => inbox.messages().some(m => m.id === sent.id))
  assert.equal(inbox.events.filter(e => e.type === 'chat_accepted').length, 1, 'nothing replayed twice')
  await sub.close()

  // a plain call with a token the server ended: one new login, the call repeated
  await logoutFromElsewhere(bob.client.token)
  const acked = await bob.client.ack({ up_to_id: sent.id })
  assert.equal(acked.acknowledged, 1)
  assert.equal(bob.logins(), 3)
  await bob.client.close()
})

test('without a credentials callback an ended session stops the subscription, reported as fatal', async (t) => {
  const username = uniqueName('dave')
  const client = new CryptaChatClient({ baseUrl: server.url })
  t.after(async () => { await client.close() })
  await client.api.POST('/register', { body: { username, password: PASSWORD } })
  await client.login({ username, password: PASSWORD })
  const fatal: unknown[] = []
  const sub = client.subscribe({ cursor: new MemoryCursor(), onEvent: () => {}, WebSocket, onError: (error, isFatal) => { if (isFatal) fatal.push(error) } })
  await new Inbox().until('live', () => sub.state === 'live')
  await logoutFromElsewhere(client.token)
  await new Inbox().until('closed', () => sub.state === 'closed')
  assert.ok(fatal[0] instanceof ApiError && fatal[0].status === 401, 'the session end is the fatal error')
  await assert.rejects(client.ack({ up_to_id: 1 }), (error: unknown) => error instanceof ApiError && error.status === 401)
  await assert.rejects(client.login(), (error: unknown) => error instanceof ApiError && error.code === 'NO_CREDENTIALS')
})

for (const WebSocketClass of [WebSocket, null]) {
  const way = WebSocketClass === null ? 'long-poll (410)' : 'WebSocket (close 4410)'
  test(`a cursor the server does not know resyncs over the ${way}: onResync, then the stream from its start`, async (t) => {
    const alice = await user(t, server, 'alice')
    const bob = await user(t, server, 'bob')
    await befriend(alice, bob)
    const cursor = new MemoryCursor()
    cursor.value = '999999-1'
    const resyncs: Array<{ code: string, cursor: string | undefined }> = []
    const inbox = new Inbox()
    const sub = bob.client.subscribe({
      cursor,
      onEvent: inbox.onEvent,
      onResync: code => { resyncs.push({ code, cursor: cursor.value }) },
      WebSocket: WebSocketClass,
      pollTimeout: 1
    })
    await inbox.until('chat_accepted', events => events.some(e => e.type === 'chat_accepted'))
    assert.deepEqual(resyncs, [{ code: 'CURSOR_UNKNOWN', cursor: '999999-1' }], 'onResync ran before the cursor was reset')
    assert.equal(cursor.value, inbox.events.at(-1)?.cursor)
    await sub.close()
  })
}
