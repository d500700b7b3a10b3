import t from 'tap'
import { build, call, isError, rowCounts, snapshot, user } from '../helper.js'

t.test('request, list, accept: both sides see each other as contacts once', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'Bob')
  let res = await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  t.equal(res.statusCode, 201)
  t.type(res.json().message, 'string')
  res = await call(app, bob, { method: 'GET', url: '/get_chat_requests' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().pending_requests.length, 1)
  t.match(res.json().pending_requests[0], { requester_username: 'alice', status: 'pending' })
  t.same((await call(app, alice, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] }, 'the requester has nothing to answer')
  t.same((await call(app, alice, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] }, 'pending is not a contact')
  res = await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'ALICE' } })
  t.equal(res.statusCode, 200)
  t.same((await call(app, alice, { method: 'GET', url: '/get_contacts' })).json(), { contacts: ['Bob'] })
  t.same((await call(app, bob, { method: 'GET', url: '/get_contacts' })).json(), { contacts: ['alice'] })
  t.same((await call(app, bob, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] })
})

t.test('asking someone who already asked you accepts their request instead of mirroring it', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  const res = await call(app, bob, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  t.equal(res.statusCode, 201)
  t.match(res.json().message, /already asked you/)
  t.equal((await rowCounts(app)).chat_requests, 1)
  t.same((await call(app, alice, { method: 'GET', url: '/get_contacts' })).json(), { contacts: ['bob'] })
})

t.test('duplicate requests, requests to contacts, to yourself and to nobody are refused and change nothing', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const carol = await user(app, 'carol')
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  await call(app, carol, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'carol' } })
  const before = await snapshot(app)
  isError(t, await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } }), 409, 'ALREADY_REQUESTED')
  isError(t, await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'BOB' } }), 409, 'ALREADY_REQUESTED')
  isError(t, await call(app, carol, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } }), 409, 'ALREADY_CONTACTS')
  isError(t, await call(app, bob, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'carol' } }), 409, 'ALREADY_CONTACTS')
  isError(t, await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'Alice' } }), 400, 'SELF_REQUEST')
  isError(t, await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'nobody' } }), 404, 'USER_NOT_FOUND')
  for (const payload of [{}, { recipient_username: '' }, { recipient_username: 42 }, { recipient_username: null }, { recipient_username: 'a b' }, { username: 'bob' }]) {
    const res = await call(app, alice, { method: 'POST', url: '/request_chat', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /recipient_username/)
  }
  t.same(await snapshot(app), before)
})

t.test('accepting what was never requested, twice, or your own request is refused', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await user(app, 'carol')
  isError(t, await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'carol' } }), 404, 'NO_PENDING_REQUEST')
  isError(t, await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'nobody' } }), 404, 'USER_NOT_FOUND')
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  isError(t, await call(app, alice, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'bob' } }), 404, 'NO_PENDING_REQUEST')
  isError(t, await call(app, alice, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } }), 404, 'NO_PENDING_REQUEST')
  const before = await rowCounts(app)
  t.equal((await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } })).statusCode, 200)
  isError(t, await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } }), 404, 'NO_PENDING_REQUEST')
  t.same(await rowCounts(app), { ...before, events: before.events! + 2 }, 'accepting updates the row and adds a chat_accepted event for each side, nothing else')
  for (const payload of [{}, { requester_username: true }, { requester_username: 'x' }]) {
    const res = await call(app, bob, { method: 'POST', url: '/accept_chat', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /requester_username/)
  }
})

t.test('concurrent mirror requests end as one accepted pair', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const results = await Promise.all([
    call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } }),
    call(app, bob, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  ])
  t.same(results.map(r => r.statusCode), [201, 201])
  t.equal((await rowCounts(app)).chat_requests, 1)
  t.same((await call(app, alice, { method: 'GET', url: '/get_contacts' })).json(), { contacts: ['bob'] })
})

t.test('get_contacts lists every contact once, whoever asked, sorted by name', async t => {
  const app = await build(t)
  const me = await user(app, 'me_user')
  const names = ['zed', 'Amy', 'bob', 'carl']
  for (const [i, name] of names.entries()) {
    const other = await user(app, name)
    const [asker, askerToken, target, targetToken] = i % 2 === 0 ? ['me_user', me, name, other] : [name, other, 'me_user', me]
    await call(app, askerToken, { method: 'POST', url: '/request_chat', payload: { recipient_username: target } })
    await call(app, targetToken, { method: 'POST', url: '/accept_chat', payload: { requester_username: asker } })
  }
  t.same((await call(app, me, { method: 'GET', url: '/get_contacts' })).json(), { contacts: ['Amy', 'bob', 'carl', 'zed'] })
})
