import t from 'tap'
import { buildApp, serverOptions } from '../../app.js'
import { revokeToken } from '../../db/sessions.js'
import { eraseUser } from '../../db/users.js'
import { build, devicesOf, login, testConfig, user } from '../helper.js'
import { Client, eventually, idOf, listen, pair, send } from '../realtime-helper.js'

t.test('a message reaches every socket of the recipient and of the sender, each with its own copy', async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const alicePhone = await Client.open(base, alice.token, { via: 'protocol' })
  const aliceLaptop = await Client.open(base, alice.token, { via: 'query' })
  const bobPhone = await Client.open(base, bob.token, { via: 'header' })
  const bobLaptop = await Client.open(base, bob.token)
  for (const [client, replay] of [[alicePhone, ['chat_accepted']], [aliceLaptop, ['chat_accepted']], [bobPhone, ['chat_request', 'chat_accepted']], [bobLaptop, ['chat_request', 'chat_accepted']]] as const) {
    const frames = await client.until('ready')
    t.same(frames.map(frame => frame.type), [...replay, 'ready'], 'the replay from the start, then ready')
  }
  t.equal(alicePhone.ws.protocol, 'bearer', 'the server answers the bearer subprotocol')

  const sent = (await send(app, alice, bob, { sender_blob: 'alice copy', recipient_blob: 'bob copy', client_msg_id: 'm-1' })).json()
  for (const [client, blob, clientMsgId] of [[alicePhone, 'alice copy', 'm-1'], [aliceLaptop, 'alice copy', 'm-1'], [bobPhone, 'bob copy', null], [bobLaptop, 'bob copy', null]] as const) {
    const frame = await client.next()
    t.match(frame, {
      type: 'message',
      message: { id: sent.id, sender_username: 'alice', recipient_username: 'bob', encrypted_blob: blob, client_msg_id: clientMsgId, timestamp: sent.timestamp }
    })
  }
  for (const client of [alicePhone, aliceLaptop, bobPhone, bobLaptop]) {
    t.same(client.invalid, [], 'every frame matches its schema')
    await client.close()
  }
})

t.test('disconnect, messages meanwhile, reconnect with the cursor: nothing missed, nothing twice', async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  let bobSocket = await Client.open(base, bob.token)
  await bobSocket.until('ready')
  await send(app, alice, bob)
  await send(app, alice, bob)
  const firstTwo = await bobSocket.take(2)
  const cursor = firstTwo[1]?.type === 'message' ? firstTwo[1].cursor : ''
  await bobSocket.close()

  for (let i = 0; i < 3; i++) await send(app, alice, bob)
  await send(app, bob, alice)
  bobSocket = await Client.open(base, bob.token, { since: cursor })
  const replay = await bobSocket.until('ready')
  await send(app, alice, bob)
  const live = await bobSocket.take(1)
  const ids = [...firstTwo, ...replay, ...live].flatMap(frame => frame.type === 'message' ? [frame.message.id] : [])
  const all = await app.db.selectFrom('messages').select('id').orderBy('id').execute()
  t.same(ids, all.map(row => row.id), 'every message once, in order')
  t.same(bobSocket.invalid, [])
  await bobSocket.close()
})

t.test('the token is checked before the upgrade', async t => {
  const app = await build(t)
  const base = await listen(app)
  const token = await user(app, 'alice')
  let refused = await Client.refused(base, undefined)
  t.equal(refused.status, 401)
  t.equal(refused.body.code, 'MISSING_TOKEN')
  refused = await Client.refused(base, token.slice(0, -2) + 'xx')
  t.equal(refused.status, 401)
  t.equal(refused.body.code, 'INVALID_TOKEN')
  refused = await Client.refused(base, token, '/ws?since=yesterday')
  t.equal(refused.status, 400)
  t.equal(refused.body.code, 'VALIDATION_ERROR')
  await app.db.updateTable('users').set({ token_version: 1 }).execute()
  refused = await Client.refused(base, token)
  t.equal(refused.status, 401)
  t.equal(refused.body.code, 'TOKEN_REVOKED')
})

function jtiOf (token: string): { jti: string, exp: number, user_id: number } {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
}

t.test('a revoked token or a bumped token_version closes sockets when the hub says so', async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const secondToken = await login(app, 'alice')
  const first = await Client.open(base, alice.token)
  const second = await Client.open(base, secondToken)
  const bobSocket = await Client.open(base, bob.token)
  for (const client of [first, second, bobSocket]) await client.until('ready')

  // logout of one session: only its sockets close
  const { jti, exp, user_id: aliceId } = jtiOf(alice.token)
  await revokeToken(app.db, jti, aliceId, exp * 1000)
  await app.hub.disconnectUser(aliceId, { jti })
  t.match(await first.next(), { type: 'error', code: 'SESSION_ENDED' })
  t.same(await first.closed, { code: 4401, reason: 'SESSION_ENDED' })
  t.equal((await Client.refused(base, alice.token)).status, 401, 'the revoked token cannot reconnect')
  await send(app, bob, { name: 'alice', token: secondToken })
  t.match(await second.next(), { type: 'message' }, 'the other session still receives')

  // password change or deletion: every socket of the user closes
  await app.db.updateTable('users').set({ token_version: 1 }).where('id', '=', aliceId).execute()
  await app.hub.disconnectUser(aliceId)
  t.match(await second.next(), { type: 'error', code: 'SESSION_ENDED' })
  t.equal((await second.closed).code, 4401)
  t.equal((await Client.refused(base, secondToken)).body.code, 'TOKEN_REVOKED')

  await bobSocket.take(1) // its own message
  t.equal(bobSocket.ws.readyState, bobSocket.ws.OPEN, "another user's socket is untouched")
  for (const client of [first, second, bobSocket]) t.same(client.invalid, [])
  await bobSocket.close()
})

t.test('a reader that stops reading is dropped, and resumes from its cursor', async t => {
  const app = await build(t, { MAX_BLOB_LENGTH: '1048576', BODY_LIMIT: '4194304', WS_BUFFER_LIMIT: '16384', WS_DRAIN_TIMEOUT: '1s' })
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const big = 'x'.repeat(1024 * 1024)
  for (let i = 0; i < 24; i++) await send(app, alice, bob, { recipient_blob: big })

  const slow = await Client.open(base, bob.token)
  const socket = (slow.ws as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  socket.pause()
  await eventually(() => app.websocketServer.clients.size === 0)
  socket.resume()
  t.equal((await slow.closed).code, 1006, 'dropped, not closed politely: its buffer is full')
  const received = slow.frames.flatMap(frame => frame.type === 'message' ? [frame] : [])
  t.ok(received.length < 24, `it got ${received.length} of 24 before being dropped`)

  const resumed = await Client.open(base, bob.token, { since: received.at(-1)?.cursor })
  const rest = await resumed.until('ready')
  const ids = [...received, ...rest].flatMap(frame => frame.type === 'message' ? [frame.message.id] : [])
  const all = await app.db.selectFrom('messages').select('id').orderBy('id').execute()
  t.same(ids, all.map(row => row.id), 'every message once after resuming')
  await resumed.close()
})

t.test('a peer that stops answering pings is dropped', async t => {
  const app = await build(t, { WS_PING_INTERVAL: '1s' })
  const base = await listen(app)
  const token = await user(app, 'alice')
  const live = await Client.open(base, token)
  const dead = await Client.open(base, token)
  await dead.until('ready')
  const socket = (dead.ws as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  socket.pause()
  await eventually(() => app.websocketServer.clients.size === 1)
  socket.resume()
  t.equal((await dead.closed).code, 1006)
  t.equal(live.ws.readyState, live.ws.OPEN, 'a peer that answers stays')
  await live.close()
})

t.test('tokens never reach the log, whichever way they come', async t => {
  const lines: string[] = []
  const config = await testConfig(t, { LOG_LEVEL: 'debug' })
  const app = await buildApp(config, {
    logger: { ...serverOptions(config).logger as object, stream: { write: (line: string) => { lines.push(line) } } }
  })
  t.teardown(async () => { await app.close() })
  const base = await listen(app)
  const token = await user(app, 'alice')
  for (const via of ['protocol', 'query', 'header'] as const) {
    const client = await Client.open(base, token, { via })
    await client.until('ready')
    await client.close()
  }
  await Client.refused(base, token.slice(0, -2) + 'xx', `/ws?token=${token.slice(0, -2)}xx`)
  const log = lines.join('')
  t.match(log, /\/ws\?token=\[redacted\]/, 'the URL is logged without its token')
  t.notOk(log.includes(token.split('.')[2] ?? ''), 'no token signature in the log')
  t.notOk(log.includes(token.slice(0, -2)), 'no token in the log')
})

t.test('a socket closes when its token expires', async t => {
  const app = await build(t)
  const base = await listen(app)
  await user(app, 'alice')
  const { jti, user_id: userId } = jtiOf(await login(app, 'alice'))
  const shortLived = app.jwt.sign({ user_id: userId, username: 'alice', jti, ver: 0 }, { expiresIn: 2 })
  const client = await Client.open(base, shortLived)
  await client.until('ready')
  t.match(await client.next(), { type: 'error', code: 'TOKEN_EXPIRED' })
  t.same(await client.closed, { code: 4401, reason: 'TOKEN_EXPIRED' })
  t.equal((await Client.refused(base, shortLived)).body.code, 'TOKEN_EXPIRED')
})

t.test('a deleted account cannot open a socket, its events go, and its partner\'s stream keeps only a contact_deleted that names nobody', async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  await send(app, alice, bob)
  const bobSocket = await Client.open(base, bob.token)
  await bobSocket.until('ready')
  const aliceId = await idOf(app, 'alice')
  await eraseUser(app.db, aliceId)
  await app.hub.disconnectUser(aliceId)
  t.equal((await Client.refused(base, alice.token)).body.code, 'ACCOUNT_GONE')
  t.equal(await app.db.selectFrom('events').select('seq').where('device_id', 'in', devicesOf(app.db, aliceId)).executeTakeFirst(), undefined, 'its events went with it')
  // bob's stream still works: what named alice went with her (the request, the acceptance, the
  // message), and a contact_deleted without a name tells him to refresh his lists
  const after = await Client.open(base, bob.token)
  const frames = await after.until('ready')
  t.same(frames.map(frame => frame.type), ['contact_deleted', 'ready'])
  t.notOk(JSON.stringify(frames).includes('alice'), 'nothing bob is sent names alice')
  for (const client of [bobSocket, after]) await client.close()
})

t.test('closing the server closes its sockets with 1001', async t => {
  const app = await build(t)
  const base = await listen(app)
  const token = await user(app, 'alice')
  const client = await Client.open(base, token)
  await client.until('ready')
  await app.close()
  t.same(await client.closed, { code: 1001, reason: 'server shutting down' })
})

t.test("another account's cursor closes the socket with 4410 CURSOR_UNKNOWN", async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const aliceSocket = await Client.open(base, alice.token, { since: '' })
  const [first] = await aliceSocket.until('ready')
  const bobSocket = await Client.open(base, bob.token, { since: first?.type === 'chat_accepted' ? first.cursor : 'none' })
  t.match(await bobSocket.next(), { type: 'error', code: 'CURSOR_UNKNOWN' })
  t.same(await bobSocket.closed, { code: 4410, reason: 'CURSOR_UNKNOWN' })
  t.same(bobSocket.invalid, [])
  await aliceSocket.close()
})
