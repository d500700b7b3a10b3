import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { appendEvents } from '../../db/events.js'
import { findUserByName } from '../../db/users.js'
import { PASSWORD, befriend, build, call, user } from '../helper.js'
import { Client, listen, send } from '../realtime-helper.js'

// A request that commits events hands them to this instance's sockets with the wake-up
// (HubSignal's `events`): a socket whose cursor they follow on from sends them without
// reading them back. What it sends must be exactly what a read would have sent, and a socket
// that missed something (a gap in the seqs) must read instead of skipping it.

/** cryptachat_websocket_events_total by source. */
async function socketEvents (app: FastifyInstance): Promise<{ pushed: number, read: number }> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const count = (source: string): number => Number(new RegExp(`^cryptachat_websocket_events_total\\{source="${source}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0)
  return { pushed: count('pushed'), read: count('read') }
}

async function device (app: FastifyInstance, username: string, registrationId: number, id?: number): Promise<{ token: string, device_id: number, registrationId: number }> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username, password: PASSWORD, device: { registrationId, ...id === undefined ? {} : { id } } } })
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
  return { ...res.json(), registrationId }
}

t.test('messages, envelopes and delivered events reach sockets without a read, as the very frames a replay reads', async t => {
  const app = await build(t, { METRICS: 'on' })
  const base = await listen(app)
  for (const name of ['alice', 'bob']) await user(app, name)
  const alice = [await device(app, 'alice', 101, 1), await device(app, 'alice', 102)]
  const bob = [await device(app, 'bob', 201, 1), await device(app, 'bob', 202)]
  await befriend(app, { name: 'alice', token: alice[0]!.token }, { name: 'bob', token: bob[0]!.token })
  const sockets = [...alice, ...bob].map(async d => await Client.open(base, d.token))
  const [alicePhone, aliceLaptop, bobPhone, bobLaptop] = await Promise.all(sockets) as [Client, Client, Client, Client]
  const replayed = await Promise.all([alicePhone, aliceLaptop, bobPhone, bobLaptop].map(async c => (await c.until('ready')).length - 1))
  const before = await socketEvents(app)

  // a message (4 sockets), bob acknowledges it (alice's 2), an envelope to each of bob's devices (2)
  const sent = (await send(app, { name: 'alice', token: alice[0]!.token }, { name: 'bob', token: bob[0]!.token }, { client_msg_id: 'c-1' })).json()
  t.equal((await call(app, bob[0]!.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: sent.id } })).statusCode, 200)
  const envelopes = bob.map(d => ({ type: 1, destinationDeviceId: d.device_id, destinationRegistrationId: d.registrationId, content: Buffer.from(`for ${d.device_id}`).toString('base64') }))
  t.equal((await call(app, alice[0]!.token, { method: 'PUT', url: '/v1/messages/bob', payload: { messages: envelopes } })).statusCode, 200)

  const live = new Map<Client, unknown[]>([
    [alicePhone, await alicePhone.take(2)], [aliceLaptop, await aliceLaptop.take(2)],
    [bobPhone, await bobPhone.take(2)], [bobLaptop, await bobLaptop.take(2)]
  ])
  t.same([...live.get(alicePhone) ?? []].map(f => (f as { type: string }).type), ['message', 'delivered'])
  t.same([...live.get(bobLaptop) ?? []].map(f => (f as { type: string }).type), ['message', 'envelope'])
  const after = await socketEvents(app)
  t.same({ pushed: after.pushed - before.pushed, read: after.read - before.read }, { pushed: 8, read: 0 }, 'all 8 handed over, none read back')

  // a new socket of each device replays its stream from the start: the same frames
  for (const [[client, frames], d, skip] of [...live].map((entry, i) => [entry, [...alice, ...bob][i]!, replayed[i]!] as const)) {
    const replay = await Client.open(base, d.token)
    const read = await replay.until('ready')
    t.same(read.slice(skip, -1), frames, `device ${d.device_id}: the pushed frames are the replay's`)
    t.same(client.invalid, [], 'every frame matches its schema')
    await replay.close()
    await client.close()
  }
  t.ok((await socketEvents(app)).read > after.read, 'and the replays were read')
})

t.test('an event that reached the stream without a push (another process) is read, not skipped, before the pushed one', async t => {
  const app = await build(t, { METRICS: 'on' })
  const base = await listen(app)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  const socket = await Client.open(base, bob.token)
  await socket.until('ready')
  // as the admin CLI would: committed on the stream, no wake-up on this instance
  const bobId = (await findUserByName(app.db, 'bob'))?.id ?? 0
  await app.db.transaction().execute(async trx => { await appendEvents(trx, [{ userId: bobId, type: 'key_changed', payload: { username: 'alice' } }]) })
  const before = await socketEvents(app)
  await send(app, alice, bob)
  const frames = await socket.take(2)
  t.same(frames.map(f => f.type), ['key_changed', 'message'], 'the missed event first, then the message, in stream order')
  const cursors = frames.map(f => Number((f as { cursor: string }).cursor.split('-')[1]))
  t.equal(cursors[1], (cursors[0] ?? 0) + 1, 'consecutive seqs')
  const after = await socketEvents(app)
  t.same({ pushed: after.pushed - before.pushed, read: after.read - before.read }, { pushed: 0, read: 2 }, 'the gap made the socket read both')

  // and from there on, pushed again
  await send(app, alice, bob)
  t.equal((await socket.next())?.type, 'message')
  t.equal((await socketEvents(app)).pushed - after.pushed, 1)
  await socket.close()
})
