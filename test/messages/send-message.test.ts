import t from 'tap'
import { befriend, build, call, isError, snapshot, user } from '../helper.js'

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
  t.equal((await snapshot(app)).messages, 0)
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
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { ...ok, sender_blob: 'x'.repeat(400_000) } }), 413)
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: 'not json', headers: { 'content-type': 'application/json' } }), 400)
  isError(t, await call(app, alice.token, { method: 'POST', url: '/send_message', payload: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415)
  t.equal((await snapshot(app)).messages, 0)
})
