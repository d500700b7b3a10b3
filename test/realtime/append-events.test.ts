import t from 'tap'
import { appendEvents } from '../../db/events.js'
import { build, devicesOf } from '../helper.js'
import { Client, idOf, listen, pair, sync } from '../realtime-helper.js'

// What other features (decline, removal) call: appendEvents inside their own transaction,
// then hub.publish after the commit.
t.test('events appended by other features reach sync and sockets in their documented shapes', async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const aliceId = await idOf(app, 'alice')
  const bobId = await idOf(app, 'bob')
  const socket = await Client.open(base, alice.token)
  await socket.until('ready')

  await app.db.transaction().execute(async trx => {
    const before = await trx.selectFrom('events').select(eb => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    await appendEvents(trx, [
      { userId: aliceId, type: 'chat_declined', payload: { username: 'bob' } },
      { userId: 999999, type: 'contact_removed', payload: { username: 'bob' } },
      { userId: aliceId, type: 'contact_removed', payload: { username: 'bob' } }
    ])
    const after = await trx.selectFrom('events').select(eb => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    t.equal(Number(after.n), Number(before.n) + 2, 'no such user: nothing appended for it')
    const seqs = (await trx.selectFrom('events').select('seq').where('device_id', 'in', devicesOf(trx, aliceId)).orderBy('seq', 'desc').limit(2).execute()).map(row => row.seq)
    t.equal(seqs[0], (seqs[1] ?? 0) + 1, "the same user's events take consecutive seqs")
  })
  await app.hub.publish([aliceId])
  t.match(await socket.take(2), [{ type: 'chat_declined', username: 'bob' }, { type: 'contact_removed', username: 'bob' }])
  t.match((await sync(t, app, alice.token)).events.slice(-2), [{ type: 'chat_declined', username: 'bob' }, { type: 'contact_removed', username: 'bob' }])
  t.same(socket.invalid, [])

  // a rolled-back transaction leaves no event and no gap
  await app.db.transaction().execute(async trx => {
    await appendEvents(trx, [{ userId: bobId, type: 'contact_removed', payload: { username: 'alice' } }])
    throw new Error('rolled back')
  }).catch(() => {})
  const before = (await sync(t, app, bob.token)).events
  await app.db.transaction().execute(async trx => { await appendEvents(trx, [{ userId: bobId, type: 'contact_removed', payload: { username: 'alice' } }]) })
  const after = (await sync(t, app, bob.token)).events
  t.equal(after.length, before.length + 1)
  const seqs = after.map((e: { cursor: string }) => Number(e.cursor.split('-')[1]))
  t.same(seqs, seqs.map((_: number, i: number) => i + 1), 'no gap where the rolled-back event was')
  await socket.close()
})
