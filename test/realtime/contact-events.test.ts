import t from 'tap'
import { build, call, snapshot, user } from '../helper.js'
import { sync } from '../realtime-helper.js'

t.test('a chat request and its acceptance are events for the right people', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  t.match((await sync(t, app, bob)).events, [{ type: 'chat_request', requester_username: 'alice' }])
  t.same((await sync(t, app, alice)).events, [], 'the requester gets nothing for asking')
  await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } })
  t.match((await sync(t, app, alice)).events, [{ type: 'chat_accepted', username: 'bob' }])
  t.match((await sync(t, app, bob)).events, [{ type: 'chat_request' }, { type: 'chat_accepted', username: 'alice' }])

  // asking someone who already asked you accepts: both learn it
  const carol = await user(app, 'carol')
  await call(app, carol, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'carol' } })
  t.match((await sync(t, app, carol)).events, [{ type: 'chat_accepted', username: 'alice' }])
  t.match((await sync(t, app, alice)).events.slice(-2), [{ type: 'chat_request', requester_username: 'carol' }, { type: 'chat_accepted', username: 'carol' }])

  // refused requests make no event
  const before = await snapshot(app)
  t.equal((await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })).statusCode, 409)
  t.equal((await call(app, alice, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'bob' } })).statusCode, 404)
  t.same(await snapshot(app), before)
})

t.test('uploading a different key tells every contact; a first key or the same key tells nobody', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const carol = await user(app, 'carol')
  const stranger = await user(app, 'dave')
  for (const other of [['bob', bob], ['carol', carol]] as const) {
    await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: other[0] } })
    await call(app, other[1], { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } })
  }
  const upload = async (key: string): Promise<void> => {
    const res = await call(app, alice, { method: 'POST', url: '/upload_key', payload: { public_key: key } })
    t.equal(res.statusCode, 200)
  }
  const cursors = { bob: (await sync(t, app, bob)).next, carol: (await sync(t, app, carol)).next }
  await upload('key one')
  await upload('key one')
  t.same((await sync(t, app, bob, { since: cursors.bob })).events, [], 'first key and same key: no event')
  await upload('key two')
  for (const [name, token] of [['bob', bob], ['carol', carol]] as const) {
    const { events } = await sync(t, app, token, { since: cursors[name] })
    t.match(events, [{ type: 'key_changed', username: 'alice' }])
    t.equal(events.length, 1)
  }
  t.same((await sync(t, app, stranger)).events, [], 'a non-contact learns nothing')
  t.same((await sync(t, app, alice)).events.filter(e => e.type === 'key_changed'), [], 'nor the uploader')
  const stored = await call(app, bob, { method: 'GET', url: '/get_key?username=alice' })
  t.equal(stored.json().public_key, 'key two')
})
