import t from 'tap'
import { befriend, build, call, isError, rowCounts, snapshot, user } from '../helper.js'
import { sync } from '../realtime-helper.js'

const send = (to: string): { method: 'POST', url: string, payload: object } => ({ method: 'POST', url: '/send_message', payload: { recipient_username: to, sender_blob: 's', recipient_blob: 'r' } })
const ask = (to: string): { method: 'POST', url: string, payload: object } => ({ method: 'POST', url: '/request_chat', payload: { recipient_username: to } })

t.test('a blocked user sees exactly what a stranger sees', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const mallory = await user(app, 'mallory')
  const stranger = await user(app, 'stranger')
  await call(app, alice, { method: 'POST', url: '/upload_key', payload: { public_key: 'alice key' } })
  t.equal((await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'Mallory' } })).statusCode, 200)

  const fromBlocked = [await call(app, mallory, ask('alice')), await call(app, mallory, ask('alice')), await call(app, mallory, send('alice')), await call(app, mallory, { method: 'GET', url: '/get_key?username=alice' })]
  const fromStranger = [await call(app, stranger, ask('alice')), await call(app, stranger, ask('alice')), await call(app, stranger, send('alice')), await call(app, stranger, { method: 'GET', url: '/get_key?username=alice' })]
  t.same(fromBlocked.map(res => [res.statusCode, res.body]), fromStranger.map(res => [res.statusCode, res.body]), 'same statuses and bodies')
  t.same(fromBlocked.map(res => res.statusCode), [201, 409, 403, 200])

  const pending = (await call(app, alice, { method: 'GET', url: '/get_chat_requests' })).json().pending_requests
  t.same(pending.map((p: { requester_username: string }) => p.requester_username), ['stranger'], 'the blocked request is never shown')
  isError(t, await call(app, alice, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'mallory' } }), 404, 'NO_PENDING_REQUEST')
  isError(t, await call(app, alice, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'mallory' } }), 404, 'NO_PENDING_REQUEST')
  isError(t, await call(app, alice, ask('mallory')), 409, 'USER_BLOCKED')
  t.same((await call(app, alice, { method: 'GET', url: '/get_blocked' })).json().blocked.map((b: { username: string }) => b.username), ['mallory'])
})

t.test('blocking an accepted contact looks like remove_contact to the blocked side: contact_removed to both', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  t.equal((await call(app, bob.token, send('alice'))).statusCode, 201)
  await call(app, alice.token, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  t.same((await call(app, alice.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
  t.same((await call(app, bob.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
  t.match((await sync(t, app, bob.token)).events.map(e => [e.type, e.username]), [['chat_request', undefined], ['chat_accepted', 'alice'], ['message', undefined], ['contact_removed', 'alice']])
  t.match((await sync(t, app, alice.token)).events.slice(-1), [{ type: 'contact_removed', username: 'bob' }], 'the blocker\'s own devices learn it too, as from remove_contact')
  isError(t, await call(app, bob.token, send('alice')), 403, 'NOT_A_CONTACT')
  isError(t, await call(app, alice.token, send('bob')), 403, 'NOT_A_CONTACT')
  t.equal((await call(app, bob.token, { method: 'GET', url: '/get_messages?username=alice' })).json().messages.length, 1, 'history stays, as after remove_contact')
  t.equal((await call(app, bob.token, ask('alice'))).statusCode, 201, 'bob may ask again and is told nothing')
  t.same((await call(app, alice.token, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] })
})

t.test('blocking someone whose request you have not answered looks like decline_chat: chat_declined, and asking again is a fresh 201 then 409', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, bob, ask('alice'))
  isError(t, await call(app, bob, ask('alice')), 409, 'ALREADY_REQUESTED')
  await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  t.equal((await rowCounts(app)).chat_requests, 0)
  t.match((await sync(t, app, bob)).events, [{ type: 'chat_declined', username: 'alice' }])
  t.equal((await call(app, bob, ask('alice'))).statusCode, 201, 'as after a decline')
  isError(t, await call(app, bob, ask('alice')), 409, 'ALREADY_REQUESTED')
  t.equal((await call(app, bob, { method: 'POST', url: '/cancel_request', payload: { recipient_username: 'alice' } })).statusCode, 200, 'and it can be withdrawn')
  t.same((await call(app, alice, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] })
  t.same((await sync(t, app, alice)).events.map(e => e.type), ['chat_request'], 'the blocker hears nothing after the block (only bob\'s first request)')
})

t.test('blocking someone you asked looks like cancel_request: request_cancelled, gone from their get_chat_requests', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, ask('bob'))
  t.equal((await call(app, bob, { method: 'GET', url: '/get_chat_requests' })).json().pending_requests.length, 1)
  await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  t.equal((await rowCounts(app)).chat_requests, 0)
  t.same((await call(app, bob, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] })
  t.match((await sync(t, app, bob)).events, [{ type: 'chat_request', requester_username: 'alice' }, { type: 'request_cancelled', username: 'alice' }])
  isError(t, await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } }), 404, 'NO_PENDING_REQUEST')
  t.equal((await call(app, bob, ask('alice'))).statusCode, 201, 'their mirror request is a fresh one, not an acceptance')
  t.same((await call(app, alice, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
})

t.test('blocking again changes nothing: a request sent since stays pending, as its sender believes', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  await call(app, bob, ask('alice'))
  const before = await snapshot(app)
  t.equal((await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })).statusCode, 200)
  t.same(await snapshot(app), before)
  isError(t, await call(app, bob, ask('alice')), 409, 'ALREADY_REQUESTED')
})

t.test('unblock shows the request sent during the block as the pending request its sender believes it is', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  t.equal((await rowCounts(app)).blocks, 1, 'blocking twice is one block')
  await call(app, bob, ask('alice'))
  const res = await call(app, alice, { method: 'POST', url: '/unblock_user', payload: { username: 'bob' } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { message: 'bob unblocked.' })
  t.same((await call(app, alice, { method: 'GET', url: '/get_blocked' })).json(), { blocked: [] })
  t.match((await call(app, alice, { method: 'GET', url: '/get_chat_requests' })).json().pending_requests, [{ requester_username: 'bob', status: 'pending' }])
  t.match((await sync(t, app, alice)).events, [{ type: 'chat_request', requester_username: 'bob' }], 'it reaches the unblocker as any request does')
  t.same((await sync(t, app, bob)).events, [], 'the requester sees nothing change')
  isError(t, await call(app, bob, ask('alice')), 409, 'ALREADY_REQUESTED')
  t.equal((await call(app, alice, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'bob' } })).statusCode, 200)
  t.equal((await call(app, bob, send('alice'))).statusCode, 201)
})

t.test('unblock without a request sent meanwhile makes no event; a contact ended by the block stays ended', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  await call(app, alice.token, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  const before = await rowCounts(app)
  t.equal((await call(app, alice.token, { method: 'POST', url: '/unblock_user', payload: { username: 'bob' } })).statusCode, 200)
  t.same(await rowCounts(app), { ...before, blocks: 0 })
  t.same((await call(app, bob.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
})

t.test('a block is one-way: the blocked user can still block back, and each lifts only their own', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'bob' } })
  t.equal((await call(app, bob, { method: 'POST', url: '/block_user', payload: { username: 'alice' } })).statusCode, 200)
  t.equal((await call(app, bob, { method: 'POST', url: '/unblock_user', payload: { username: 'alice' } })).statusCode, 200)
  t.same((await call(app, bob, { method: 'GET', url: '/get_blocked' })).json(), { blocked: [] })
  t.equal((await call(app, alice, { method: 'GET', url: '/get_blocked' })).json().blocked.length, 1)
})

t.test('block and unblock refusals: yourself, unknown users, not blocked, bad bodies', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  await user(app, 'bob')
  const before = await snapshot(app)
  isError(t, await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'ALICE' } }), 400, 'SELF_BLOCK')
  isError(t, await call(app, alice, { method: 'POST', url: '/block_user', payload: { username: 'nobody' } }), 404, 'USER_NOT_FOUND')
  isError(t, await call(app, alice, { method: 'POST', url: '/unblock_user', payload: { username: 'nobody' } }), 404, 'USER_NOT_FOUND')
  isError(t, await call(app, alice, { method: 'POST', url: '/unblock_user', payload: { username: 'bob' } }), 404, 'NOT_BLOCKED')
  for (const url of ['/block_user', '/unblock_user']) {
    for (const payload of [{}, { username: null }, { username: 'b' }, { username: 'bob<script>' }, { user: 'bob' }]) {
      const res = await call(app, alice, { method: 'POST', url, payload })
      isError(t, res, 400, 'VALIDATION_ERROR')
      t.match(res.json().message, /username/)
    }
    isError(t, await app.inject({ method: 'POST', url, payload: { username: 'bob' } }), 401, 'MISSING_TOKEN')
  }
  isError(t, await app.inject({ method: 'GET', url: '/get_blocked' }), 401, 'MISSING_TOKEN')
  t.same(await snapshot(app), before)
})
