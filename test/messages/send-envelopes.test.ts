import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { truncateLog } from '../../db/connect.js'
import { PASSWORD, postgresUrl, befriend, build, call, isError, snapshot, user } from '../helper.js'
import { Client, listen, sync } from '../realtime-helper.js'

// PUT /v1/messages/{username}: one envelope per device, the device set enforced, each
// envelope deleted once its device acknowledges it.

interface Dev { token: string, device_id: number, registrationId: number }

async function device (app: FastifyInstance, username: string, registrationId: number, id?: number): Promise<Dev> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username, password: PASSWORD, device: { registrationId, ...id === undefined ? {} : { id } } } })
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
  return { ...res.json(), registrationId }
}

const b64 = (text: string): string => Buffer.from(text).toString('base64')
const to = (devs: Dev[], text: string, type = 1): Array<Record<string, unknown>> =>
  devs.map(d => ({ type, destinationDeviceId: d.device_id, destinationRegistrationId: d.registrationId, content: b64(`${text}@${d.device_id}`) }))
const put = async (app: FastifyInstance, from: Dev, username: string, messages: unknown, extra: Record<string, unknown> = {}): Promise<LightMyRequestResponse> =>
  await call(app, from.token, { method: 'PUT', url: `/v1/messages/${username}`, payload: { messages, ...extra } })

/** Alice with devices 1 and 2, bob with devices 1, 2 and 3, all registered; contacts. */
async function scene (app: FastifyInstance): Promise<{ alice: Dev[], bob: Dev[] }> {
  for (const name of ['alice', 'bob']) await user(app, name)
  const alice = [await device(app, 'alice', 101, 1), await device(app, 'alice', 102)]
  const bob = [await device(app, 'bob', 201, 1), await device(app, 'bob', 202), await device(app, 'bob', 203)]
  await befriend(app, { name: 'alice', token: alice[0]!.token }, { name: 'bob', token: bob[0]!.token })
  return { alice, bob }
}

/** Carol with one registered device, bob's contact. */
async function carolFor (app: FastifyInstance, bob: Dev): Promise<Dev> {
  await user(app, 'carol')
  const carol = await device(app, 'carol', 301)
  await befriend(app, { name: 'carol', token: carol.token }, { name: 'bob', token: bob.token })
  return carol
}

const envelopes = (events: Array<{ type: string, envelope?: unknown }>): any[] => events.filter(e => e.type === 'envelope').map(e => e.envelope)

t.test('each device gets its own envelope; the sender\'s other devices get their copies; a retry stores nothing', async t => {
  const app = await build(t)
  const { alice, bob } = await scene(app)
  const res = await put(app, alice[0]!, 'bob', to(bob, 'hi', 3), { client_msg_id: 'm-1' })
  t.equal(res.statusCode, 200, res.body)
  const { id, timestamp } = res.json()
  t.match(timestamp, /^\d{4}-/)
  for (const d of bob) {
    t.same(envelopes((await sync(t, app, d.token)).events), [{ id, sourceUsername: 'alice', sourceDevice: 1, type: 3, content: b64(`hi@${d.device_id}`), timestamp }], `bob's device ${d.device_id} gets its own`)
  }
  t.same(envelopes((await sync(t, app, alice[1]!.token)).events), [], 'nothing for the sender\'s devices until it sends them copies')
  const again = await put(app, alice[0]!, 'bob', to(bob, 'hi', 3), { client_msg_id: 'm-1' })
  t.same(again.json(), { id, timestamp }, 'the same client_msg_id: the first answer')
  t.equal(envelopes((await sync(t, app, bob[1]!.token)).events).length, 1, 'and nothing stored again')
  isError(t, await put(app, alice[0]!, 'alice', to([alice[1]!], 'x'), { client_msg_id: 'm-1' }), 409, 'CLIENT_MSG_ID_REUSED')

  // sync copies: to one's own name, every other device (never the sending one), no contact needed
  const copy = await put(app, alice[0]!, 'alice', to([alice[1]!], 'copy'))
  t.equal(copy.statusCode, 200)
  t.same(envelopes((await sync(t, app, alice[1]!.token)).events).map(e => e.content), [b64('copy@2')])
  t.same(envelopes((await sync(t, app, alice[0]!.token)).events), [], 'never back to the sending device')
  const copyAll = await put(app, alice[0]!, 'alice', to(alice, 'x'))
  isError(t, copyAll, 409, 'MISMATCHED_DEVICES')
  t.same(copyAll.json().extraDevices, [1], 'the sending device is not a destination')

  // nothing of it in the original API
  const page = (await call(app, bob[0]!.token, { method: 'GET', url: '/get_messages?username=alice' })).json()
  t.same(page.messages, [])
})

t.test('the device set: 409 names missing and extra devices, 410 names devices registered again; nothing stored', async t => {
  const app = await build(t)
  const { alice, bob } = await scene(app)
  const before = await snapshot(app)
  const missing = await put(app, alice[0]!, 'bob', to(bob.slice(0, 2), 'x'))
  isError(t, missing, 409, 'MISMATCHED_DEVICES')
  t.same(missing.json(), { ...missing.json(), missingDevices: [3], extraDevices: [] })
  const extra = await put(app, alice[0]!, 'bob', [...to(bob, 'x'), { type: 1, destinationDeviceId: 9, destinationRegistrationId: 1, content: b64('x') }])
  isError(t, extra, 409, 'MISMATCHED_DEVICES')
  t.same(extra.json(), { ...extra.json(), missingDevices: [], extraDevices: [9] })
  const stale = await put(app, alice[0]!, 'bob', to(bob, 'x').map((m, i) => i === 1 ? { ...m, destinationRegistrationId: 999 } : m))
  isError(t, stale, 410, 'STALE_DEVICES')
  t.same(stale.json().staleDevices, [2])
  t.same(await snapshot(app), before, 'nothing stored')

  // bob adds a device: the next send without it is a 409 naming it; with it, it goes through
  const added = await device(app, 'bob', 204)
  const without = await put(app, alice[0]!, 'bob', to(bob, 'x'))
  isError(t, without, 409, 'MISMATCHED_DEVICES')
  t.same(without.json().missingDevices, [added.device_id])
  t.equal((await put(app, alice[0]!, 'bob', to([...bob, added], 'x'))).statusCode, 200)
  // a device registered again: 410 until the sender uses its new registrationId
  const reinstalled = await device(app, 'bob', 250, 2)
  isError(t, await put(app, alice[0]!, 'bob', to([...bob, added], 'x')), 410, 'STALE_DEVICES')
  t.equal((await put(app, alice[0]!, 'bob', to([bob[0]!, reinstalled, bob[2]!, added], 'x'))).statusCode, 200)
  // a device without a registrationId (an original-API client) is not a destination
  await user(app, 'carol')
  const carol = await device(app, 'carol', 301)
  await befriend(app, { name: 'alice', token: alice[0]!.token }, { name: 'carol', token: carol.token })
  t.equal((await put(app, alice[0]!, 'carol', to([carol], 'x'))).statusCode, 200, 'carol\'s device 1 never registered: not needed')
})

t.test('bad input: a clear 400 naming the problem, nothing stored; strangers and blockers get 403, unknown names 404', async t => {
  const app = await build(t, { MAX_ENVELOPE_BYTES: '300' })
  const { alice, bob } = await scene(app)
  const good = to(bob, 'x')
  const before = await snapshot(app)
  const cases: Array<[unknown, RegExp]> = [
    [[], /messages/],
    [[{ ...good[0], type: 2 }, ...good.slice(1)], /type/],
    [[{ ...good[0], type: 6 }, ...good.slice(1)], /type/],
    [[{ ...good[0], destinationDeviceId: 0 }, ...good.slice(1)], /destinationDeviceId/],
    [[{ ...good[0], destinationDeviceId: 128 }, ...good.slice(1)], /destinationDeviceId/],
    [[{ ...good[0], destinationRegistrationId: 0 }, ...good.slice(1)], /destinationRegistrationId/],
    [[{ ...good[0], content: 'not base64!' }, ...good.slice(1)], /content/],
    [[{ ...good[0], content: 'YQ' }, ...good.slice(1)], /content/],
    [[{ ...good[0], content: 'YR==' }, ...good.slice(1)], /content/],
    [[{ ...good[0], content: '-_-_' }, ...good.slice(1)], /content/],
    [[{ ...good[0], content: b64('y'.repeat(301)) }, ...good.slice(1)], /content/],
    [[good[0], { ...good[0] }, ...good.slice(1)], /named twice/],
    [[{ ...good[0], content: undefined }, ...good.slice(1)], /content/],
    ['everyone', /messages/]
  ]
  for (const [messages, pattern] of cases) {
    const res = await put(app, alice[0]!, 'bob', messages)
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, pattern, `${JSON.stringify(messages).slice(0, 60)}: ${res.json().message as string}`)
  }
  isError(t, await put(app, alice[0]!, 'b', good), 400, 'VALIDATION_ERROR')
  isError(t, await put(app, alice[0]!, 'nobody', good), 404, 'USER_NOT_FOUND')
  const dave = await device(app, (await user(app, 'dave'), 'dave'), 401)
  isError(t, await put(app, dave, 'bob', good), 403, 'NOT_A_CONTACT')
  await call(app, bob[0]!.token, { method: 'POST', url: '/block_user', payload: { username: 'alice' } })
  isError(t, await put(app, alice[0]!, 'bob', good), 403, 'NOT_A_CONTACT')
  isError(t, await app.inject({ method: 'PUT', url: '/v1/messages/bob', payload: { messages: good } }), 401, 'MISSING_TOKEN')
  const { users: _u, devices: _d, ...rest } = await snapshot(app)
  const { users: _bu, devices: _bd, ...restBefore } = before
  t.same({ ...rest, chat_requests: restBefore.chat_requests, blocks: restBefore.blocks, events: restBefore.events }, restBefore, 'no envelope or send stored')
})

t.test('sends at once, to one recipient and between both parties, with a retry racing itself: each stored once, every stream numbered without a gap', async t => {
  const app = await build(t)
  const { alice, bob } = await scene(app)
  const carol = await carolFor(app, bob[0]!)
  const requests = [
    ...Array.from({ length: 8 }, async (_, i) => await put(app, alice[0]!, 'bob', to(bob, `a${i}`))),
    ...Array.from({ length: 4 }, async () => await put(app, alice[0]!, 'bob', to(bob, 'race'), { client_msg_id: 'race' })),
    ...Array.from({ length: 8 }, async (_, i) => await put(app, carol, 'bob', to(bob, `c${i}`))),
    ...Array.from({ length: 4 }, async (_, i) => await put(app, bob[0]!, 'alice', to(alice, `b${i}`))),
    ...Array.from({ length: 4 }, async (_, i) => await put(app, alice[0]!, 'alice', to([alice[1]!], `copy${i}`))),
    ...Array.from({ length: 4 }, async () => await call(app, alice[1]!.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r' } }))
  ]
  const answers = await Promise.all(requests)
  t.same(answers.map(res => res.statusCode), [...Array(28).fill(200), ...Array(4).fill(201)], 'every send answered (no deadlock, no lost lock)')
  t.equal(new Set(answers.slice(8, 12).map(res => res.json().id)).size, 1, 'the racing retries: one send')
  const rows = await app.db.selectFrom('events').select(['device_id', 'seq']).orderBy('device_id').orderBy('seq').execute()
  const streams = new Map<number, number[]>()
  for (const row of rows) streams.set(row.device_id, [...streams.get(row.device_id) ?? [], Number(row.seq)])
  for (const [device, seqs] of streams) t.same(seqs, seqs.map((_, i) => i + 1), `device ${device}: seqs 1 to ${seqs.length}`)
  const count = async (d: Dev): Promise<number> => envelopes((await sync(t, app, d.token, { limit: 500 })).events).length
  for (const d of bob) t.equal(await count(d), 8 + 1 + 8, `bob's device ${d.device_id}: one envelope from each send to bob`)
  t.equal(await count(alice[0]!), 4, 'alice\'s device 1: bob\'s four')
  t.equal(await count(alice[1]!), 4 + 4, 'alice\'s device 2: bob\'s four and her own four copies')
})

t.test('an acknowledged envelope is deleted, the sender told which device; ack_messages bad input', async t => {
  const app = await build(t)
  const { alice, bob } = await scene(app)
  const secret = 'PLAINLY-FINDABLE-CIPHERTEXT'
  const sent = (await put(app, alice[0]!, 'bob', to(bob, secret))).json()
  const aliceCursor = (await sync(t, app, alice[1]!.token)).next
  const ack = await call(app, bob[1]!.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: [sent.id] } })
  t.same(ack.json(), { message: 'Messages acknowledged.', acknowledged: 1 })
  t.same(envelopes((await sync(t, app, bob[1]!.token)).events), [], 'gone from its stream')
  t.equal(envelopes((await sync(t, app, bob[0]!.token)).events).length, 1, 'the other devices still have theirs')
  const rows = await app.db.selectFrom('envelopes').select('content').execute()
  t.equal(rows.length, 2)
  t.notOk(rows.some(row => Buffer.from(row.content, 'base64').toString() === `${secret}@2`), 'its row is deleted')
  const told = (await sync(t, app, alice[1]!.token, { since: aliceCursor })).events
  t.match(told, [{ type: 'delivered', username: 'bob', message_ids: [sent.id], device: 2 }], 'each of the sender\'s devices hears which device has it')
  t.same((await call(app, bob[1]!.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: [sent.id] } })).json().acknowledged, 0, 'a second ack: nothing')
  t.same((await call(app, alice[0]!.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: [sent.id] } })).json().acknowledged, 0, 'nobody else can ack them')
  for (const payload of [{}, { envelope_ids: [] }, { envelope_ids: [0] }, { envelope_ids: ['1'] }, { envelope_ids: 5 }, { envelope_ids: Array.from({ length: 1001 }, (_, i) => i + 1) }]) {
    const res = await call(app, bob[0]!.token, { method: 'POST', url: '/ack_messages', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /up_to_id|envelope_ids/)
  }
  for (const d of [bob[0]!, bob[2]!]) await call(app, d.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: [sent.id] } })
  t.equal((await app.db.selectFrom('envelopes').select('id').execute()).length, 0, 'every envelope acknowledged: none left')
  t.equal((await app.db.selectFrom('events').select('seq').where('type', '=', 'envelope').execute()).length, 0, 'nor their events')
})

t.test('acks at once, of several senders\' envelopes, racing themselves and new sends: each envelope deleted once, each sender told once per device, every stream numbered without a gap', async t => {
  const app = await build(t)
  const { alice, bob } = await scene(app)
  const carol = await carolFor(app, bob[0]!)
  const sent = async (from: Dev, username: string, devs: Dev[], text: string): Promise<number> => {
    const res = await put(app, from, username, to(devs, text))
    t.equal(res.statusCode, 200, res.body)
    return res.json().id
  }
  const fromAlice = [await sent(alice[0]!, 'bob', bob, 'a0'), await sent(alice[1]!, 'bob', bob, 'a1'), await sent(alice[0]!, 'bob', bob, 'a2')]
  const fromCarol = [await sent(carol, 'bob', bob, 'c0'), await sent(carol, 'bob', bob, 'c1'), await sent(carol, 'bob', bob, 'c2')]
  const copy = await sent(alice[0]!, 'alice', [alice[1]!], 'copy')
  const fromBob = [await sent(bob[0]!, 'alice', alice, 'b0'), await sent(bob[0]!, 'alice', alice, 'b1')]
  const ack = async (d: Dev, ids: number[]): Promise<number> => {
    const res = await call(app, d.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: ids } })
    t.equal(res.statusCode, 200, res.body)
    return res.json().acknowledged
  }
  const all = [...fromAlice, ...fromCarol]
  const [racing, another, split, odd, own, ...rest] = await Promise.all([
    Promise.all([ack(bob[0]!, all), ack(bob[0]!, all)]),
    ack(bob[0]!, [...all].reverse()),
    Promise.all([ack(bob[1]!, fromAlice), ack(bob[1]!, fromCarol)]),
    ack(bob[2]!, [...all, 999_999, fromAlice[0]!, fromBob[0]!]),
    ack(alice[1]!, [copy, ...fromBob]),
    ...Array.from({ length: 4 }, async (_, i) => await sent(alice[0]!, 'bob', bob, `new-a${i}`)),
    ...Array.from({ length: 2 }, async (_, i) => await sent(carol, 'bob', bob, `new-c${i}`)),
    ...Array.from({ length: 2 }, async () => (await call(app, bob[1]!.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 's', recipient_blob: 'r' } })).statusCode)
  ])
  t.equal((racing as number[])[0]! + (racing as number[])[1]! + (another as number), 6, 'bob\'s device 1: its six envelopes acknowledged once among three acks at once')
  t.same(split, [3, 3], 'device 2, a request per sender')
  t.equal(odd, 6, 'device 3: ids it never had (a stranger\'s, a send to someone else) and a repeated id count for nothing')
  t.equal(own, 3, 'alice\'s device 2: her own copy and bob\'s two')
  t.same(rest.slice(6), [201, 201])

  // every number a device's counter handed out is an event, or was one of an envelope it acknowledged
  const acked = new Map([['bob:1', 6], ['bob:2', 6], ['bob:3', 6], ['alice:2', 3]])
  const counters = await app.db.selectFrom('devices').innerJoin('users', 'users.id', 'devices.user_id')
    .select(['devices.id', 'devices.event_seq', 'devices.device_id', 'users.username']).orderBy('devices.id').execute()
  t.equal(counters.filter(row => acked.has(`${row.username}:${row.device_id}`)).length, acked.size)
  for (const { id, event_seq: counter, device_id: number, username } of counters) {
    const seqs = (await app.db.selectFrom('events').select('seq').where('device_id', '=', id).orderBy('seq').execute()).map(row => Number(row.seq))
    const gone = acked.get(`${username}:${number}`) ?? 0
    t.equal(seqs.length + gone, Number(counter), `${username}'s device ${number}: ${seqs.length} events and ${gone} acknowledged, numbered up to ${counter}`)
    t.equal(new Set(seqs).size, seqs.length)
  }

  // who heard what: for each of the sender's devices, each (acking device, send) once
  const heard = async (d: Dev): Promise<string[]> => (await sync(t, app, d.token, { limit: 500 })).events
    .filter((e: { type: string }) => e.type === 'delivered')
    .flatMap((e: { username: string, device?: number, message_ids: number[] }) => e.message_ids.map(id => `${e.username}:${e.device ?? '-'}:${id}`))
    .sort()
  const expected = (username: string, devices: number[], ids: number[]): string[] => devices.flatMap(n => ids.map(id => `${username}:${n}:${id}`)).sort()
  for (const d of alice) t.same(await heard(d), expected('bob', [1, 2, 3], fromAlice), `alice's device ${d.device_id}: bob's three devices, her three sends, once each; nothing for her own copy`)
  t.same(await heard(carol), expected('bob', [1, 2, 3], fromCarol), 'carol: the same for hers')
  for (const d of bob) t.same(await heard(d), expected('alice', [2], fromBob), `bob's device ${d.device_id}: alice's device 2 has his two`)
  const left = await app.db.selectFrom('envelopes').innerJoin('sends', 'sends.id', 'envelopes.send_id').select(['envelopes.send_id', 'sends.recipient_id']).execute()
  t.equal(left.length, 6 * 3 + 2, 'left: the new sends\' envelopes and bob\'s two on alice\'s device 1')
  t.notOk(left.some(row => [...all, copy].includes(Number(row.send_id))), 'none of the acknowledged')
  t.equal((await app.db.selectFrom('events').select('seq').where('type', '=', 'envelope').execute()).length, left.length, 'an envelope event for each envelope left, none for the others')
})

t.test('an unacknowledged envelope expires with retention and its sender learns it', async t => {
  const app = await build(t, { MESSAGE_RETENTION_DAYS: '1' })
  const { alice, bob } = await scene(app)
  const sent = (await put(app, alice[0]!, 'bob', to(bob, 'x'))).json()
  await call(app, bob[0]!.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: [sent.id] } })
  const cursor = (await sync(t, app, alice[0]!.token)).next
  const outcome = await app.retention.sweep(Date.now() + 2 * 86_400_000)
  t.equal(outcome?.envelopes, 2)
  t.equal((await app.db.selectFrom('envelopes').select('id').execute()).length, 0)
  t.equal((await app.db.selectFrom('sends').select('id').execute()).length, 0, 'nor the send')
  const told = (await sync(t, app, alice[0]!.token, { since: cursor })).events.filter((e: { type: string }) => e.type === 'expired_undelivered')
  t.same(told.map((e: { device: number, message_ids: number[] }) => [e.device, e.message_ids]), [[2, [sent.id]], [3, [sent.id]]])
})

t.test('two devices each holding a socket: each gets only its own envelopes, both the account\'s events', async t => {
  const app = await build(t)
  const { alice, bob } = await scene(app)
  const base = await listen(app)
  const sockets = await Promise.all(bob.slice(0, 2).map(async d => {
    const socket = await Client.open(base, d.token)
    await socket.until('ready')
    return socket
  }))
  await put(app, alice[0]!, 'bob', to(bob, 'live'))
  await call(app, alice[0]!.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r' } })
  for (const [i, socket] of sockets.entries()) {
    const frames = await socket.take(2) as any[]
    t.same(frames.map(f => f.type), ['envelope', 'message'])
    t.equal(Buffer.from(frames[0].envelope.content, 'base64').toString(), `live@${i + 1}`)
    t.equal(frames[1].message.encrypted_blob, 'r')
  }
})

t.test('on SQLite, an acknowledged envelope leaves no byte of its content in the database files', { skip: postgresUrl === undefined ? false : 'PostgreSQL: see docs/security.md for what it keeps on disk' }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-envelopes-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'db.sqlite')
  const app = await build(t, { DATABASE_URL: `sqlite:${file}` })
  const { alice, bob } = await scene(app)
  const marker = 'ENVELOPE-CONTENT-THAT-MUST-GO-'.repeat(4)
  const sent = (await put(app, alice[0]!, 'bob', to(bob, marker))).json()
  const bytes = (): Buffer => Buffer.concat(['', '-wal', '-shm'].map(suffix => existsSync(file + suffix) ? readFileSync(file + suffix) : Buffer.alloc(0)))
  const found = (): boolean => bob.some(d => bytes().includes(b64(`${marker}@${d.device_id}`)))
  t.ok(found(), 'stored: the scan finds it')
  for (const d of bob) await call(app, d.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: [sent.id] } })
  t.ok(await truncateLog(app.db, 5000), 'the log is checkpointed and truncated (as after an erasure; otherwise its old frames are reused in turn)')
  t.notOk(found(), 'deleted pages are zeroed (secure_delete): no copy of any envelope is left')
})
