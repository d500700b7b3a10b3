import t from 'tap'
import { build, call, isError, rowCounts, snapshot, user } from '../helper.js'

t.test('decline_chat removes the pending request; the requester may ask again', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  const res = await call(app, bob, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'ALICE' } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { message: 'Chat request from alice declined.' })
  t.same((await call(app, bob, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] })
  t.equal((await rowCounts(app)).chat_requests, 0)
  isError(t, await call(app, alice, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r' } }), 403, 'NOT_A_CONTACT')
  t.equal((await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })).statusCode, 201, 'asking again works')
  t.equal((await call(app, bob, { method: 'GET', url: '/get_chat_requests' })).json().pending_requests.length, 1)
})

t.test('only the requested side can decline, and only a pending request', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await user(app, 'carol')
  await call(app, alice.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  const before = await rowCounts(app)
  isError(t, await call(app, alice.token, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'bob' } }), 404, 'NO_PENDING_REQUEST')
  isError(t, await call(app, bob.token, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'carol' } }), 404, 'NO_PENDING_REQUEST')
  isError(t, await call(app, bob.token, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'nobody' } }), 404, 'USER_NOT_FOUND')
  isError(t, await call(app, bob.token, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'bob' } }), 404, 'NO_PENDING_REQUEST')
  await call(app, bob.token, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } })
  isError(t, await call(app, bob.token, { method: 'POST', url: '/decline_chat', payload: { requester_username: 'alice' } }), 404, 'NO_PENDING_REQUEST')
  t.same((await rowCounts(app)).chat_requests, before.chat_requests)
})

t.test('bad decline_chat bodies are 400s naming the field', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const before = await snapshot(app)
  for (const payload of [{}, { requester_username: '' }, { requester_username: 5 }, { requester_username: 'a b c' }, { username: 'bob' }]) {
    const res = await call(app, token, { method: 'POST', url: '/decline_chat', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /requester_username/)
  }
  t.same(await snapshot(app), before)
})
