import t from 'tap'
import { build, call, isError, snapshot, user } from '../helper.js'
import { eventually, hub, idOf, pair, send, sync } from '../realtime-helper.js'

t.test('sync returns every event after the cursor, oldest first, paged with has_more and next', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  for (let i = 0; i < 5; i++) await send(app, alice, bob)

  const all = await sync(t, app, bob.token)
  t.same(all.events.map(e => e.type), ['chat_request', 'chat_accepted', 'message', 'message', 'message', 'message', 'message'])
  t.equal(all.has_more, false)
  t.equal(all.next, all.events.at(-1).cursor)

  const seen: any[] = []
  let since = ''
  for (;;) {
    const page = await sync(t, app, bob.token, { since, limit: 2 })
    seen.push(...page.events)
    since = page.next
    if (!page.has_more) break
    t.equal(page.events.length, 2)
  }
  t.same(seen, all.events, 'paging yields the same events, each once')

  const empty = await sync(t, app, bob.token, { since: all.next })
  t.same(empty, { events: [], next: all.next, has_more: false }, 'nothing new: the same cursor back')

  const mine = await sync(t, app, alice.token)
  t.same(mine.events.filter(e => e.type === 'message').map(e => e.message.encrypted_blob),
    all.events.filter(e => e.type === 'message').map(e => e.message.encrypted_blob.replace('for-bob', 'for-alice')),
    'each side reads its own copy')
})

t.test('a long-poll returns the moment an event is stored', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const { next } = await sync(t, app, bob.token)
  const waiting = sync(t, app, bob.token, { since: next, timeout: 30 })
  const bobId = await idOf(app, 'bob')
  await eventually(() => hub(app).listenerCount(bobId) === 1) // it has read, found nothing, and waits
  const sent = (await send(app, alice, bob)).json()
  const woke = await waiting
  t.equal(hub(app).listenerCount(bobId), 0, 'it stopped listening')
  t.equal(woke.events.length, 1)
  t.match(woke.events[0], { type: 'message', message: { id: sent.id } })
})

t.test('a long-poll with nothing new answers empty at its timeout', async t => {
  const app = await build(t)
  const [, bob] = await pair(app)
  const { next } = await sync(t, app, bob.token)
  const quiet = await sync(t, app, bob.token, { since: next, timeout: 1 })
  t.same(quiet, { events: [], next, has_more: false })
})

t.test('a long-poll ends with a 401 when its session is ended', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const aliceId = await idOf(app, 'alice')
  const waiting = call(app, token, { method: 'GET', url: '/sync?timeout=30' })
  await eventually(() => hub(app).listenerCount(aliceId) === 1)
  await app.db.updateTable('users').set({ token_version: 1 }).execute()
  await app.hub.disconnectUser(aliceId)
  isError(t, await waiting, 401, 'TOKEN_REVOKED')
})

t.test('bad sync queries are 400s, foreign cursors 410s, and nothing changes', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const bobCursor = (await sync(t, app, bob.token)).next
  const aliceCursor = (await sync(t, app, alice.token)).next
  const before = await snapshot(app)
  for (const query of ['since=abc', 'since=1', 'since=1-2-3', `since=1-${'9'.repeat(16)}`, 'timeout=31', 'timeout=-1', 'timeout=1e999', 'timeout=Infinity', 'timeout=0.5', 'limit=0', 'limit=1001', 'limit=x']) {
    const res = await call(app, bob.token, { method: 'GET', url: `/sync?${query}` })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /since|timeout|limit/, query)
  }
  isError(t, await call(app, bob.token, { method: 'GET', url: `/sync?since=${aliceCursor}` }), 410, 'CURSOR_UNKNOWN')
  const [owner, seq] = bobCursor.split('-')
  isError(t, await call(app, bob.token, { method: 'GET', url: `/sync?since=${owner}-${Number(seq) + 1}` }), 410, 'CURSOR_UNKNOWN')
  isError(t, await app.inject({ method: 'GET', url: '/sync' }), 401, 'MISSING_TOKEN')
  t.same(await snapshot(app), before)
})

t.test('a server shutting down answers its long-polls at once', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const aliceId = await idOf(app, 'alice')
  const waiting = call(app, token, { method: 'GET', url: '/sync?timeout=30' })
  await eventually(() => hub(app).listenerCount(aliceId) === 1)
  await app.close()
  const res = await waiting
  t.equal(res.statusCode, 200)
  t.same(res.json().events, [])
})
