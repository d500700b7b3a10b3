import t from 'tap'
import { befriend, build, call, isError, rowCounts, snapshot, user } from '../helper.js'
import { sync } from '../realtime-helper.js'

const cancel = (to: unknown): { method: 'POST', url: string, payload: object } => ({ method: 'POST', url: '/cancel_request', payload: { recipient_username: to } })
const ask = (to: string): { method: 'POST', url: string, payload: object } => ({ method: 'POST', url: '/request_chat', payload: { recipient_username: to } })

t.test('cancel_request withdraws your pending request; its recipient gets request_cancelled; you may ask again', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, ask('bob'))
  const res = await call(app, alice, cancel('BOB'))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { message: 'Chat request to bob withdrawn.' })
  t.same((await call(app, bob, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] })
  t.equal((await rowCounts(app)).chat_requests, 0)
  t.match((await sync(t, app, bob)).events, [{ type: 'chat_request', requester_username: 'alice' }, { type: 'request_cancelled', username: 'alice' }])
  t.same((await sync(t, app, alice)).events, [], 'the canceller gets no event, as a requester gets none for its request')
  isError(t, await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } }), 404, 'NO_PENDING_REQUEST')
  t.equal((await call(app, alice, ask('bob'))).statusCode, 201, 'asking again is a fresh request')
  t.equal((await call(app, bob, { method: 'GET', url: '/get_chat_requests' })).json().pending_requests.length, 1)
})

t.test('only the requester can cancel, and only a pending request: anything else is a 404 that changes nothing', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  const carol = { name: 'carol', token: await user(app, 'carol') }
  await call(app, alice.token, ask('bob'))
  await befriend(app, alice, carol)
  const before = await snapshot(app)
  const refused = [
    [bob.token, 'alice', 'NO_SENT_REQUEST', 'the recipient cannot cancel (it declines)'],
    [alice.token, 'carol', 'NO_SENT_REQUEST', 'an accepted request is a contact (remove_contact ends it)'],
    [carol.token, 'bob', 'NO_SENT_REQUEST', 'never asked'],
    [alice.token, 'alice', 'NO_SENT_REQUEST', 'yourself: no request can exist'],
    [alice.token, 'ALICE', 'NO_SENT_REQUEST', 'yourself, in another case'],
    [alice.token, 'nobody', 'USER_NOT_FOUND', 'an unknown user']
  ] as const
  for (const [token, to, code, why] of refused) {
    const res = await call(app, token, cancel(to))
    t.comment(why)
    isError(t, res, 404, code)
    t.match(res.json().message, new RegExp(to, 'i'), 'the message names the user')
  }
  t.same(await snapshot(app), before)
})

t.test('bad cancel_request bodies are 400s naming the field, and a missing token a 401; nothing changes', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  await user(app, 'bob')
  await call(app, alice, ask('bob'))
  const before = await snapshot(app)
  for (const payload of [{}, { recipient_username: '' }, { recipient_username: null }, { recipient_username: 5 }, { recipient_username: ['bob'] },
    { recipient_username: 'a b' }, { recipient_username: 'x'.repeat(33) }, { recipient_username: 'bob<script>' }, { username: 'bob' }]) {
    const res = await call(app, alice, { method: 'POST', url: '/cancel_request', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /recipient_username/)
  }
  isError(t, await call(app, alice, { method: 'POST', url: '/cancel_request', payload: '{"recipient_username":', headers: { 'content-type': 'application/json' } }), 400, 'MALFORMED_JSON')
  isError(t, await call(app, alice, { method: 'POST', url: '/cancel_request', payload: '<recipient_username>bob</recipient_username>', headers: { 'content-type': 'application/xml' } }), 415, 'UNSUPPORTED_MEDIA_TYPE')
  isError(t, await app.inject({ method: 'POST', url: '/cancel_request', payload: { recipient_username: 'bob' } }), 401, 'MISSING_TOKEN')
  t.same(await snapshot(app), before)
})

t.test('cancel_request is limited at request_chat\'s rate, with its own count', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_REQUEST_CHAT: '2/minute', RATE_LIMIT_REGISTER: '100/hour', RATE_LIMIT_LOGIN: '100/hour' })
  const alice = await user(app, 'alice')
  for (const name of ['bob', 'carol', 'dave']) await user(app, name)
  t.equal((await call(app, alice, ask('bob'))).statusCode, 201)
  t.equal((await call(app, alice, ask('carol'))).statusCode, 201)
  t.equal((await call(app, alice, cancel('bob'))).statusCode, 200, 'the requests did not use up the cancels')
  t.equal((await call(app, alice, cancel('carol'))).statusCode, 200)
  const before = await snapshot(app)
  const res = await call(app, alice, cancel('dave'))
  isError(t, res, 429, 'RATE_LIMITED')
  t.ok(res.headers['retry-after'])
  t.same(await snapshot(app), before)
})
