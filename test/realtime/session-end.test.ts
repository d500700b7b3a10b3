import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { admin, adminEnv } from '../fixtures/admin.js'
import { PASSWORD, bearer, build, call, login, user } from '../helper.js'
import { Client, eventually, hub, idOf, listen, sync } from '../realtime-helper.js'

// Logout, password change, account deletion and the admin's disable/delete close the
// sockets (and long-polls) they end, on real sockets. The admin CLI is another process
// without our hub: its victims' sockets close at their next ping, when the session is
// checked again.

async function ended (t: Test, client: Client, code: string): Promise<void> {
  t.match(await client.next(), { type: 'error', code })
  t.same(await client.closed, { code: 4401, reason: code })
}

/** A socket still delivers: an event for its user arrives on it. */
async function stillOpen (t: Test, app: Parameters<typeof call>[0], client: Client, username: string): Promise<void> {
  const someone = await user(app, `someone${randomBytes(3).toString('hex')}`)
  t.equal((await call(app, someone, { method: 'POST', url: '/request_chat', payload: { recipient_username: username } })).statusCode, 201)
  t.match(await client.next(), { type: 'chat_request' }, 'the other session still gets its events')
}

t.test("logout closes that session's sockets and long-polls, and only those", async t => {
  const app = await build(t)
  const base = await listen(app)
  const phone = await user(app, 'alice')
  const laptop = await login(app, 'alice')
  const phoneSockets = [await Client.open(base, phone), await Client.open(base, phone, { via: 'query' })]
  const laptopSocket = await Client.open(base, laptop)
  for (const client of [...phoneSockets, laptopSocket]) await client.until('ready')
  const aliceId = await idOf(app, 'alice')
  const poll = call(app, phone, { method: 'GET', url: '/sync', query: { since: (await sync(t, app, phone)).next, timeout: '30' } })
  await eventually(() => hub(app).listenerCount(aliceId) === 4)

  t.equal((await call(app, phone, { method: 'POST', url: '/logout' })).statusCode, 200)
  for (const client of phoneSockets) await ended(t, client, 'SESSION_ENDED')
  const polled = await poll
  t.equal(polled.statusCode, 401)
  t.equal(polled.json().code, 'TOKEN_REVOKED')
  await stillOpen(t, app, laptopSocket, 'alice')
  t.equal((await Client.refused(base, phone)).body.code, 'TOKEN_REVOKED')
  await laptopSocket.close()
})

t.test('a password change closes every socket of the account; the new token opens one', async t => {
  const app = await build(t)
  const base = await listen(app)
  const bob = await user(app, 'bob')
  const alice = await user(app, 'alice')
  const sockets = [await Client.open(base, alice), await Client.open(base, await login(app, 'alice'))]
  const bobSocket = await Client.open(base, bob)
  for (const client of [...sockets, bobSocket]) await client.until('ready')

  const res = await call(app, alice, { method: 'POST', url: '/change_password', payload: { old_password: PASSWORD, new_password: 'a new horse battery' } })
  t.equal(res.statusCode, 200)
  for (const client of sockets) await ended(t, client, 'SESSION_ENDED')
  const fresh = await Client.open(base, res.json().token)
  await fresh.until('ready')
  await stillOpen(t, app, fresh, 'alice')
  await stillOpen(t, app, bobSocket, 'bob')
  for (const client of [fresh, bobSocket]) await client.close()
})

t.test('deleting the account closes its sockets', async t => {
  const app = await build(t)
  const base = await listen(app)
  const alice = await user(app, 'alice')
  const sockets = [await Client.open(base, alice), await Client.open(base, await login(app, 'alice'))]
  for (const client of sockets) await client.until('ready')
  t.equal((await call(app, alice, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })).statusCode, 200)
  for (const client of sockets) await ended(t, client, 'SESSION_ENDED')
  t.equal((await Client.refused(base, alice)).body.code, 'ACCOUNT_GONE')
})

t.test('the web console closes the sockets of a user it disables or deletes', async t => {
  const token = randomBytes(32).toString('base64url')
  const app = await build(t, { ADMIN_TOKEN: token })
  const base = await listen(app)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const aliceSocket = await Client.open(base, alice)
  const bobSocket = await Client.open(base, bob)
  for (const client of [aliceSocket, bobSocket]) await client.until('ready')

  const disabled = await app.inject({ method: 'POST', url: '/admin/api/users/alice/disable', headers: bearer(token) })
  t.match(disabled.json(), { changed: true })
  await ended(t, aliceSocket, 'SESSION_ENDED')
  t.equal((await Client.refused(base, alice)).body.code, 'ACCOUNT_DISABLED')

  const deleted = await app.inject({ method: 'DELETE', url: '/admin/api/users/bob', headers: bearer(token) })
  t.equal(deleted.statusCode, 200)
  await ended(t, bobSocket, 'SESSION_ENDED')
  t.equal((await app.inject({ method: 'DELETE', url: '/admin/api/users/bob', headers: bearer(token) })).statusCode, 404)
})

t.test('the admin CLI, another process without the hub: its victims\' sockets close at their next ping', async t => {
  const env = { ...await adminEnv(t), WS_PING_INTERVAL: '1s' }
  const app = await build(t, env)
  const base = await listen(app)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const carol = await user(app, 'carol')
  const sockets = { alice: await Client.open(base, alice), bob: await Client.open(base, bob), carol: await Client.open(base, carol) }
  for (const client of Object.values(sockets)) await client.until('ready')

  t.equal((await admin(env, 'disable-user', 'alice')).code, 0)
  await ended(t, sockets.alice, 'ACCOUNT_DISABLED')
  t.equal((await admin(env, 'delete-user', 'bob', '--yes')).code, 0)
  await ended(t, sockets.bob, 'ACCOUNT_GONE')
  // carol's socket went through the same checks and is still open and delivering
  await stillOpen(t, app, sockets.carol, 'carol')
  await sockets.carol.close()
})
