import t from 'tap'
import { loadConfig } from '../../config.js'
import { build, call, isError } from '../helper.js'
import { Client, eventually, idOf, listen, pair, send, sync } from '../realtime-helper.js'

const DAY = 86_400_000

t.test('retention purges old messages and events, reports the unacknowledged ones, and old cursors get 410', async t => {
  const app = await build(t, { MESSAGE_RETENTION_DAYS: '1' })
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const bobStart = (await sync(t, app, bob.token)).next
  const m1 = (await send(app, alice, bob)).json().id
  const m2 = (await send(app, alice, bob)).json().id
  const m3 = (await send(app, bob, alice)).json().id
  await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: m1 } })
  const bobEnd = (await sync(t, app, bob.token)).next
  const aliceId = await idOf(app, 'alice')
  const bobId = await idOf(app, 'bob')

  t.same(await app.retention.sweep(Date.now() + 12 * 3600_000), { messages: 0, envelopes: 0, events: 0, notify: [] }, 'nothing is a day old yet')
  const outcome = await app.retention.sweep(Date.now() + 2 * DAY)
  t.match(outcome, { messages: 3 })
  t.same(outcome?.notify.sort(), [aliceId, bobId].sort(), 'each sender of an unacknowledged message is told')
  t.equal((await app.db.selectFrom('messages').selectAll().execute()).length, 0)
  t.same((await call(app, bob.token, { method: 'GET', url: '/get_messages?username=alice' })).json().messages, [])

  const aliceEvents = (await sync(t, app, alice.token)).events
  t.match(aliceEvents, [{ type: 'expired_undelivered', username: 'bob', message_ids: [m2] }], 'm1 was acknowledged: only m2')
  t.equal(aliceEvents.length, 1)
  t.match((await sync(t, app, bob.token)).events, [{ type: 'expired_undelivered', username: 'alice', message_ids: [m3] }])

  const expired = await call(app, bob.token, { method: 'GET', url: `/sync?since=${bobStart}` })
  isError(t, expired, 410, 'CURSOR_EXPIRED')
  t.match((await sync(t, app, bob.token, { since: bobEnd })).events, [{ type: 'expired_undelivered' }], 'a cursor at the edge of what was purged missed nothing')

  const socket = await Client.open(base, bob.token, { since: bobStart })
  t.match(await socket.next(), { type: 'error', code: 'CURSOR_EXPIRED' })
  t.same(await socket.closed, { code: 4410, reason: 'CURSOR_EXPIRED' })
  t.same(socket.invalid, [])
})

t.test('the background sweep runs by itself', async t => {
  const app = await build(t, { MESSAGE_RETENTION_DAYS: '1', RETENTION_SWEEP_INTERVAL: '1s' })
  const [alice, bob] = await pair(app)
  await send(app, alice, bob)
  const old = Date.now() - 2 * DAY
  await app.db.updateTable('events').set({ created_at: old }).execute()
  await app.db.updateTable('messages').set({ created_at: old }).execute()
  await eventually(async () => (await app.db.selectFrom('messages').selectAll().execute()).length === 0)
  const { events } = await sync(t, app, alice.token)
  t.match(events.at(-1), { type: 'expired_undelivered', username: 'bob' })
  t.notOk(events.some(e => e.type === 'message'), 'the message event went with its message')
})

t.test('without MESSAGE_RETENTION_DAYS nothing is purged', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  await send(app, alice, bob)
  t.equal(await app.retention.sweep(Date.now() + 36500 * DAY), undefined)
  t.equal((await app.db.selectFrom('messages').selectAll().execute()).length, 1)
})

t.test('the real-time settings are validated', async t => {
  t.equal(loadConfig({}).messageRetentionDays, undefined)
  t.match(loadConfig({ MESSAGE_RETENTION_DAYS: '30', WS_PING_INTERVAL: '1m', WS_DRAIN_TIMEOUT: '10s', WS_BUFFER_LIMIT: '65536' }), {
    messageRetentionDays: 30, webSocket: { pingIntervalSeconds: 60, drainTimeoutSeconds: 10, bufferLimit: 65536 }, retentionSweepIntervalSeconds: 3600
  })
  for (const [name, value] of [['MESSAGE_RETENTION_DAYS', '0'], ['MESSAGE_RETENTION_DAYS', 'forever'],
    ['WS_PING_INTERVAL', '0s'], ['WS_PING_INTERVAL', 'often'], ['WS_BUFFER_LIMIT', '10'], ['WS_DRAIN_TIMEOUT', '0'], ['RETENTION_SWEEP_INTERVAL', '-1']] as const) {
    t.throws(() => loadConfig({ [name]: value }), new RegExp(name), `${name}=${value}`)
  }
})

t.test('sweeps running at once report each expired message once', async t => {
  const app = await build(t, { MESSAGE_RETENTION_DAYS: '1' })
  const [alice, bob] = await pair(app)
  for (let i = 0; i < 12; i++) await send(app, alice, bob)
  const later = Date.now() + 2 * DAY
  const outcomes = await Promise.all([1, 2, 3].map(async () => await app.retention.sweep(later)))
  t.equal(outcomes.reduce((sum, outcome) => sum + (outcome?.messages ?? 0), 0), 12, 'each message deleted once')
  const reported = (await sync(t, app, alice.token)).events
    .flatMap(e => e.type === 'expired_undelivered' ? e.message_ids : [])
  t.equal(reported.length, 12)
  t.equal(new Set(reported).size, 12, 'each reported once')
})
