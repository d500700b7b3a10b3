import t from 'tap'
import { PASSWORD, befriend, build, call, isError, snapshot, user } from '../helper.js'
import { Client, listen, sync } from '../realtime-helper.js'
import type { FastifyInstance } from 'fastify'

// Devices: device 1 comes with the account; a login with a registrationId adds one or
// registers one again; each device has its own token and its own event stream.

async function loginDevice (app: FastifyInstance, username: string, device?: Record<string, unknown>): Promise<{ token: string, device_id: number }> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username, password: PASSWORD, ...device === undefined ? {} : { device } } })
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
  return res.json()
}

const types = (events: Array<{ type: string }>): string[] => events.map(event => event.type)

t.test('a login without device is device 1; with a registrationId it adds the next device, which its other devices and contacts hear of', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  const plain = await loginDevice(app, 'alice')
  t.equal(plain.device_id, 1)

  const laptop = await loginDevice(app, 'alice', { registrationId: 1234, name: 'laptop' })
  t.equal(laptop.device_id, 2)
  const tablet = await loginDevice(app, 'alice', { registrationId: 99 })
  t.equal(tablet.device_id, 3)

  const listed = (await call(app, laptop.token, { method: 'GET', url: '/v1/devices' })).json()
  t.same(listed.devices.map((d: { id: number, name: string | null, registrationId: number | null }) => [d.id, d.name, d.registrationId]),
    [[1, null, null], [2, 'laptop', 1234], [3, null, 99]])
  for (const device of listed.devices) {
    t.match(device.lastSeen, /T00:00:00\.000Z$/, 'last seen kept to the day')
    t.match(device.created, /^\d{4}-\d\d-\d\dT/)
  }

  // device 1 heard of both, device 2 of device 3 only, device 3 of neither; bob of both
  t.same(types((await sync(t, app, alice)).events).filter(type => type === 'devices_changed').length, 2)
  t.same(types((await sync(t, app, laptop.token)).events), ['devices_changed'])
  t.same(types((await sync(t, app, tablet.token)).events), [])
  const bobs = (await sync(t, app, bob)).events.filter((e: { type: string }) => e.type === 'devices_changed')
  t.same(bobs.map((e: { username: string }) => e.username), ['alice', 'alice'])
})

t.test('each device has its own stream: account events reach every device, a cursor is its device\'s alone', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const laptop = await loginDevice(app, 'alice', { registrationId: 7 })
  const bob = await user(app, 'bob')
  const phoneStart = (await sync(t, app, alice)).next
  const laptopStart = (await sync(t, app, laptop.token)).next
  await befriend(app, { name: 'bob', token: bob }, { name: 'alice', token: alice })
  const sent = await call(app, bob, { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 's', recipient_blob: 'r' } })
  t.equal(sent.statusCode, 201)
  for (const [token, since] of [[alice, phoneStart], [laptop.token, laptopStart]] as const) {
    const { events } = await sync(t, app, token, { since })
    t.same(types(events), ['chat_request', 'chat_accepted', 'message'], 'every device gets the account\'s events')
    t.equal(events[2].message.encrypted_blob, 'r')
  }
  // a cursor names its device: another device's is unknown to it
  isError(t, await call(app, laptop.token, { method: 'GET', url: `/sync?since=${phoneStart}` }), 410, 'CURSOR_UNKNOWN')
  // acks from either device act on the account's messages
  const ack = await call(app, laptop.token, { method: 'POST', url: '/ack_messages', payload: { up_to_id: sent.json().id } })
  t.equal(ack.statusCode, 200)
})

t.test('the same registrationId logs the device in again; a new one registers it again and drops its tokens and stream', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  const first = await loginDevice(app, 'alice', { registrationId: 10, name: 'old' })
  const cursor = (await sync(t, app, first.token)).next
  const bobBefore = (await sync(t, app, bob)).next

  const again = await loginDevice(app, 'alice', { id: 2, registrationId: 10 })
  t.equal(again.device_id, 2)
  t.equal((await call(app, first.token, { method: 'GET', url: '/v1/devices' })).statusCode, 200, 'the earlier token still works')
  t.same((await sync(t, app, bob, { since: bobBefore })).events, [], 'nothing changed for contacts')

  const base = await listen(app)
  const socket = await Client.open(base, first.token)
  await socket.until('ready')
  const reinstalled = await loginDevice(app, 'alice', { id: 2, registrationId: 11 })
  t.equal(reinstalled.device_id, 2)
  isError(t, await call(app, first.token, { method: 'GET', url: '/v1/devices' }), 401, 'DEVICE_REMOVED')
  t.equal((await socket.closed).code, 4401, 'its socket closes')
  isError(t, await call(app, reinstalled.token, { method: 'GET', url: `/sync?since=${cursor}` }), 410, 'CURSOR_UNKNOWN')
  const listed = (await call(app, reinstalled.token, { method: 'GET', url: '/v1/devices' })).json().devices
  t.same(listed[1], { ...listed[1], id: 2, registrationId: 11, name: 'old' }, 'the name stays unless a new one is given')
  t.same(types((await sync(t, app, bob, { since: bobBefore })).events), ['devices_changed'])
  // device 1 gets its first registrationId the same way
  const primary = await loginDevice(app, 'alice', { id: 1, registrationId: 5 })
  t.equal(primary.device_id, 1)
  isError(t, await call(app, alice, { method: 'GET', url: '/v1/devices' }), 401, 'DEVICE_REMOVED')
  t.equal((await call(app, primary.token, { method: 'GET', url: '/v1/devices' })).json().devices[0].registrationId, 5)
})

t.test('MAX_DEVICES bounds them; unknown devices and bad device fields are refused and change nothing', async t => {
  const app = await build(t, { MAX_DEVICES: '3' })
  await user(app, 'alice')
  await loginDevice(app, 'alice', { registrationId: 1 })
  await loginDevice(app, 'alice', { registrationId: 2 })
  const before = await snapshot(app)
  const attempt = async (device: unknown): Promise<ReturnType<typeof app.inject>> =>
    await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD, device } })
  isError(t, await attempt({ registrationId: 3 }), 409, 'TOO_MANY_DEVICES')
  isError(t, await attempt({ id: 9, registrationId: 3 }), 404, 'DEVICE_NOT_FOUND')
  for (const bad of [
    {}, { registrationId: 0 }, { registrationId: 16381 }, { registrationId: 1.5 }, { registrationId: '7' }, { registrationId: 7, id: 0 },
    { registrationId: 7, id: 128 }, { registrationId: 7, name: 'x'.repeat(257) }, { registrationId: 7, name: 5 }, 'phone', null, []
  ]) {
    const res = await attempt(bad)
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /device/, `${JSON.stringify(bad)}: the message names the field`)
  }
  // a wrong password adds nothing, whatever the device asks
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: 'wrong password', device: { registrationId: 3 } } }), 401, 'INVALID_CREDENTIALS')
  t.same(await snapshot(app), before, 'nothing changed')
})

t.test('DELETE /v1/devices/{deviceId} removes another device (never device 1), its tokens and its socket', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  const laptop = await loginDevice(app, 'alice', { registrationId: 42 })
  const bobBefore = (await sync(t, app, bob)).next
  const aliceBefore = (await sync(t, app, alice)).next
  const before = await snapshot(app)
  for (const url of ['/v1/devices/0', '/v1/devices/128', '/v1/devices/x', '/v1/devices/2.5']) {
    isError(t, await call(app, alice, { method: 'DELETE', url }), 400, 'VALIDATION_ERROR')
  }
  isError(t, await call(app, alice, { method: 'DELETE', url: '/v1/devices/1' }), 400, 'PRIMARY_DEVICE')
  isError(t, await call(app, alice, { method: 'DELETE', url: '/v1/devices/3' }), 404, 'DEVICE_NOT_FOUND')
  isError(t, await call(app, bob, { method: 'DELETE', url: '/v1/devices/2' }), 404, 'DEVICE_NOT_FOUND')
  isError(t, await app.inject({ method: 'DELETE', url: '/v1/devices/2' }), 401, 'MISSING_TOKEN')
  t.same(await snapshot(app), before, 'refusals change nothing')

  const base = await listen(app)
  const socket = await Client.open(base, laptop.token)
  await socket.until('ready')
  const removed = await call(app, alice, { method: 'DELETE', url: '/v1/devices/2' })
  t.equal(removed.statusCode, 200)
  t.equal((await socket.closed).code, 4401)
  isError(t, await call(app, laptop.token, { method: 'GET', url: '/v1/devices' }), 401, 'DEVICE_REMOVED')
  t.same((await call(app, alice, { method: 'GET', url: '/v1/devices' })).json().devices.map((d: { id: number }) => d.id), [1])
  t.same(types((await sync(t, app, alice, { since: aliceBefore })).events), ['devices_changed'])
  t.same(types((await sync(t, app, bob, { since: bobBefore })).events), ['devices_changed'])
  t.equal(Number((await app.db.selectFrom('events').select(eb => eb.fn.countAll<number>().as('n'))
    .where('device_id', 'not in', app.db.selectFrom('devices').select('id')).executeTakeFirstOrThrow()).n), 0, 'its stream went with it')
  // the number is free again, with a new key
  t.equal((await loginDevice(app, 'alice', { registrationId: 43 })).device_id, 2)
  isError(t, await call(app, laptop.token, { method: 'GET', url: '/v1/devices' }), 401, 'DEVICE_REMOVED')
})
