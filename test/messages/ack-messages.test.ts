import t from 'tap'
import { befriend, build, call, devicesOf, isError, snapshot, user } from '../helper.js'
import { pair, send, sync } from '../realtime-helper.js'

t.test('an ack gives each sender a delivered event listing its messages just acknowledged', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const carol = { name: 'carol', token: await user(app, 'carol') }
  await befriend(app, carol, bob)
  const a1 = (await send(app, alice, bob)).json().id
  const c1 = (await send(app, carol, bob)).json().id
  const a2 = (await send(app, alice, bob)).json().id
  const a3 = (await send(app, alice, bob)).json().id
  const aliceBefore = (await sync(t, app, alice.token)).next

  const res = await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: a2 } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { message: 'Messages acknowledged.', acknowledged: 3 })
  const delivered = await sync(t, app, alice.token, { since: aliceBefore })
  t.match(delivered.events, [{ type: 'delivered', username: 'bob', message_ids: [a1, a2] }])
  t.equal(delivered.events.length, 1)
  t.match((await sync(t, app, carol.token)).events.at(-1), { type: 'delivered', username: 'bob', message_ids: [c1] })

  // acking again changes nothing and tells nobody
  const again = await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: a2 } })
  t.same(again.json().acknowledged, 0)
  t.same((await sync(t, app, alice.token, { since: delivered.next })).events, [])

  await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: a3 } })
  t.match((await sync(t, app, alice.token, { since: delivered.next })).events, [{ type: 'delivered', message_ids: [a3] }])
})

t.test('acks of ids the caller never received are refused and change nothing', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const sent = (await send(app, alice, bob)).json().id
  const before = await snapshot(app)
  for (const upToId of [sent, sent + 1, 999999]) {
    isError(t, await call(app, alice.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: upToId } }), 404, 'MESSAGE_NOT_FOUND')
  }
  for (const payload of [{}, { up_to_id: 0 }, { up_to_id: -1 }, { up_to_id: 1.5 }, { up_to_id: '1' }, { up_to_id: null }, { up_to_id: 2 ** 60 }]) {
    const res = await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /up_to_id/)
  }
  isError(t, await app.inject({ method: 'POST', url: '/ack_messages', payload: { up_to_id: sent } }), 401, 'MISSING_TOKEN')
  t.same(await snapshot(app), before)
  const row = await app.db.selectFrom('messages').select('delivered_at').executeTakeFirstOrThrow()
  t.equal(row.delivered_at, null)
})

t.test('a message with a smaller id that reached the stream later is not acknowledged with a larger one', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const early = (await send(app, alice, bob)).json().id
  const late = (await send(app, alice, bob)).json().id
  // as if `early` had committed after `late` (PostgreSQL hands ids out before commit)
  const bobId = (await app.db.selectFrom('users').select('id').where('username', '=', 'bob').executeTakeFirstOrThrow()).id
  const seqOf = async (messageId: number): Promise<number> => (await app.db.selectFrom('events').select('seq')
    .where('device_id', 'in', devicesOf(app.db, bobId)).where('message_id', '=', messageId).executeTakeFirstOrThrow()).seq
  const [earlySeq, lateSeq] = [await seqOf(early), await seqOf(late)]
  await app.db.updateTable('events').set({ seq: -1 }).where('device_id', 'in', devicesOf(app.db, bobId)).where('seq', '=', earlySeq).execute()
  await app.db.updateTable('events').set({ seq: earlySeq }).where('device_id', 'in', devicesOf(app.db, bobId)).where('seq', '=', lateSeq).execute()
  await app.db.updateTable('events').set({ seq: lateSeq }).where('device_id', 'in', devicesOf(app.db, bobId)).where('seq', '=', -1).execute()

  const aliceCursor = (await sync(t, app, alice.token)).next
  t.same((await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: late } })).json().acknowledged, 1)
  t.match((await sync(t, app, alice.token, { since: aliceCursor })).events, [{ type: 'delivered', message_ids: [late] }])
  t.same((await call(app, bob.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: early } })).json().acknowledged, 1)
})
