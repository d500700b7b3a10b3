import t from 'tap'
import { befriend, build, call, isError, rowCounts, snapshot, user } from '../helper.js'
import { pair, sync } from '../realtime-helper.js'

const body = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ recipient_username: 'bob', sender_blob: 'for alice', recipient_blob: 'for bob', ...extra })

t.test('send_message stores both copies and get_messages returns each side its own', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const res = await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body() })
  t.equal(res.statusCode, 201)
  t.match(res.json(), { message: 'Message sent.', id: Number, timestamp: /^\d{4}-\d\d-\d\dT/ })
  const bobView = await call(app, bob.token, { method: 'GET', url: '/get_messages?username=alice' })
  t.match(bobView.json(), { messages: [{ id: res.json().id, sender_username: 'alice', encrypted_blob: 'for bob' }], has_more: false })
  const aliceView = await call(app, alice.token, { method: 'GET', url: '/get_messages?username=bob' })
  t.match(aliceView.json(), { messages: [{ encrypted_blob: 'for alice' }] })
})

t.test('a retry with the same client_msg_id returns the stored message and stores nothing', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const first = await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body({ client_msg_id: 'a1b2-c3' }) })
  t.equal(first.statusCode, 201)
  const before = await snapshot(app)
  const counts = await rowCounts(app)
  // a retry re-encrypts: the blobs may differ, the id decides
  const retry = await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body({ client_msg_id: 'a1b2-c3', recipient_blob: 'again' }) })
  t.equal(retry.statusCode, 201)
  t.same(retry.json(), first.json(), 'the same id and timestamp')
  t.same(await snapshot(app), before, 'no second message, no second event')
  const events = (await sync(t, app, bob.token)).events.filter(e => e.type === 'message')
  t.equal(events.length, 1)
  t.equal(events[0].message.encrypted_blob, 'for bob', 'the first copy stands')

  // concurrent retries store once too
  const racing = await Promise.all([1, 2, 3, 4].map(async () =>
    await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body({ client_msg_id: 'race' }) })))
  t.same(new Set(racing.map(res => res.json().id)).size, 1)
  t.same(racing.map(res => res.statusCode), [201, 201, 201, 201])
  t.equal((await rowCounts(app)).messages, (counts.messages ?? 0) + 1)

  // ids are per sender: bob may use the same one
  const bobs = await call(app, bob.token, { method: 'POST', url: '/send_message', payload: body({ recipient_username: 'alice', client_msg_id: 'a1b2-c3' }) })
  t.equal(bobs.statusCode, 201)
  t.not(bobs.json().id, first.json().id)
})

t.test('a client_msg_id reused for another recipient is a 409; bad ones are 400s', async t => {
  const app = await build(t)
  const [alice] = await pair(app)
  const carol = { name: 'carol', token: await user(app, 'carol') }
  await call(app, alice.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'carol' } })
  await call(app, carol.token, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } })
  await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body({ client_msg_id: 'x' }) })
  const before = await snapshot(app)
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body({ recipient_username: 'carol', client_msg_id: 'x' }) }), 409, 'CLIENT_MSG_ID_REUSED')
  for (const clientMsgId of ['', 'a'.repeat(65), 'has space', 'é', 5, null, true, ['x']]) {
    const res = await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body({ client_msg_id: clientMsgId }) })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /client_msg_id/)
  }
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: body({ recipient_username: 'nobody' }) }), 404, 'USER_NOT_FOUND')
  const dave = await user(app, 'dave')
  isError(t, await call(app, dave, { method: 'POST', url: '/send_message', payload: body() }), 403, 'NOT_A_CONTACT')
  const after = await snapshot(app)
  t.same({ ...after, users: before.users, devices: before.devices }, before, 'nothing stored but the new user (and its device 1)')
})

t.test('a contact can send; the reply carries the stored id and timestamp', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  const res = await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'BOB', sender_blob: 'for-alice', recipient_blob: 'for-bob' } })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.type(body.message, 'string')
  t.type(body.id, 'number')
  t.ok(Math.abs(Date.parse(body.timestamp) - Date.now()) < 60_000, 'timestamp is now')
  t.equal(body.timestamp, new Date(Date.parse(body.timestamp)).toISOString(), 'ISO 8601 UTC')
  const row = await app.db.selectFrom('messages').selectAll().executeTakeFirstOrThrow()
  t.match(row, { id: body.id, sender_blob: 'for-alice', recipient_blob: 'for-bob' })
})

t.test('messaging a non-contact, a pending requester, yourself or nobody is refused and stores nothing', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await user(app, 'carol')
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  const send = async (token: string, to: string): Promise<Awaited<ReturnType<typeof call>>> =>
    await call(app, token, { method: 'POST', url: '/send_message', payload: { recipient_username: to, sender_blob: 's', recipient_blob: 'r' } })
  isError(t, await send(alice, 'carol'), 403, 'NOT_A_CONTACT')
  isError(t, await send(alice, 'bob'), 403, 'NOT_A_CONTACT')
  isError(t, await send(bob, 'alice'), 403, 'NOT_A_CONTACT')
  isError(t, await send(alice, 'alice'), 403, 'NOT_A_CONTACT')
  isError(t, await send(alice, 'nobody'), 404, 'USER_NOT_FOUND')
  t.equal((await rowCounts(app)).messages, 0)
})

t.test('bad send_message bodies are 400s naming the field; oversized bodies are 413s', async t => {
  const app = await build(t, { MAX_BLOB_LENGTH: '64' })
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  const ok = { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r' }
  const cases: Array<[object, RegExp]> = [
    [{ ...ok, recipient_username: undefined }, /recipient_username/],
    [{ ...ok, sender_blob: undefined }, /sender_blob/],
    [{ ...ok, recipient_blob: undefined }, /recipient_blob/],
    [{ ...ok, sender_blob: '' }, /sender_blob/],
    [{ ...ok, sender_blob: 5 }, /sender_blob/],
    [{ ...ok, recipient_blob: { a: 1 } }, /recipient_blob/],
    [{ ...ok, recipient_blob: false }, /recipient_blob/],
    [{ ...ok, sender_blob: 'x'.repeat(65) }, /sender_blob/],
    [{ ...ok, recipient_blob: 'x'.repeat(65) }, /recipient_blob/]
  ]
  for (const [payload, field] of cases) {
    const res = await call(app, alice.token, { method: 'POST', url: '/send_message', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, field)
  }
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { ...ok, sender_blob: 'x'.repeat(400_000) } }), 413, 'PAYLOAD_TOO_LARGE')
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: 'not json', headers: { 'content-type': 'application/json' } }), 400, 'MALFORMED_JSON')
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'UNSUPPORTED_MEDIA_TYPE')
  t.equal((await rowCounts(app)).messages, 0)
})
