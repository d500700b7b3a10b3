import t from 'tap'
import { build, call, login, user } from '../helper.js'
import { Client, listen, pair, sync } from '../realtime-helper.js'

// decline_chat, remove_contact and block_user as seen on real sockets: who hears of what.

const post = async (app: Parameters<typeof call>[0], token: string, url: string, payload: object): Promise<number> =>
  (await call(app, token, { method: 'POST', url, payload })).statusCode

t.test('a declined request reaches every socket of the requester as chat_declined, and nobody else', async t => {
  const app = await build(t)
  const base = await listen(app)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const alicePhone = await Client.open(base, alice)
  const aliceLaptop = await Client.open(base, await login(app, 'alice'))
  const bobSocket = await Client.open(base, bob)
  for (const client of [alicePhone, aliceLaptop, bobSocket]) await client.until('ready')

  t.equal(await post(app, alice, '/request_chat', { recipient_username: 'bob' }), 201)
  t.match(await bobSocket.next(), { type: 'chat_request', requester_username: 'alice' })
  t.equal(await post(app, bob, '/decline_chat', { requester_username: 'alice' }), 200)
  for (const client of [alicePhone, aliceLaptop]) t.match(await client.next(), { type: 'chat_declined', username: 'bob', cursor: /^\d+-\d+$/ })

  // bob's stream holds only the request: the next thing he hears is the next request
  const carol = await user(app, 'carol')
  t.equal(await post(app, carol, '/request_chat', { recipient_username: 'bob' }), 201)
  t.match(await bobSocket.next(), { type: 'chat_request', requester_username: 'carol' })
  t.same((await sync(t, app, bob)).events.map(e => e.type), ['chat_request', 'chat_request'])

  // a refused decline (nothing pending) adds nothing
  t.equal(await post(app, bob, '/decline_chat', { requester_username: 'alice' }), 404)
  t.same((await sync(t, app, alice)).events.map(e => e.type), ['chat_declined'])
  for (const client of [alicePhone, aliceLaptop, bobSocket]) {
    t.same(client.invalid, [], 'every frame matches its schema')
    await client.close()
  }
})

t.test('a removed contact reaches both sides as contact_removed, each naming the other', async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, bob] = await pair(app)
  const aliceSocket = await Client.open(base, alice.token)
  const bobSocket = await Client.open(base, bob.token)
  for (const client of [aliceSocket, bobSocket]) await client.until('ready')

  t.equal(await post(app, alice.token, '/remove_contact', { username: 'bob' }), 200)
  t.match(await aliceSocket.next(), { type: 'contact_removed', username: 'bob' })
  t.match(await bobSocket.next(), { type: 'contact_removed', username: 'alice' })
  t.equal(await post(app, bob.token, '/remove_contact', { username: 'alice' }), 404, 'no longer contacts')
  for (const name of [alice, bob]) {
    t.equal((await sync(t, app, name.token)).events.filter(e => e.type === 'contact_removed').length, 1, 'one event each, none for the refused removal')
  }
  for (const client of [aliceSocket, bobSocket]) {
    t.same(client.invalid, [])
    await client.close()
  }
})

t.test("a blocked user's request makes no event for the blocker, and the blocked side sees the block as a removal", async t => {
  const app = await build(t)
  const base = await listen(app)
  const [alice, mallory] = await pair(app, 'alice', 'mallory')
  const carol = await user(app, 'carol')
  const dave = await user(app, 'dave')
  const aliceSocket = await Client.open(base, alice.token)
  const aliceLaptop = await Client.open(base, await login(app, 'alice'))
  const mallorySocket = await Client.open(base, mallory.token)
  for (const client of [aliceSocket, aliceLaptop, mallorySocket]) await client.until('ready')
  const malloryBefore = (await sync(t, app, mallory.token)).next

  // blocking a contact ends it as remove_contact would: contact_removed on every socket of both
  t.equal(await post(app, alice.token, '/block_user', { username: 'mallory' }), 200)
  for (const client of [aliceSocket, aliceLaptop]) t.match(await client.next(), { type: 'contact_removed', username: 'mallory' })
  t.match(await mallorySocket.next(), { type: 'contact_removed', username: 'alice' })
  // the next thing mallory hears is dave's request: nothing else came before it
  t.equal(await post(app, dave, '/request_chat', { recipient_username: 'mallory' }), 201)
  t.match(await mallorySocket.next(), { type: 'chat_request', requester_username: 'dave' })
  t.same((await sync(t, app, mallory.token, { since: malloryBefore })).events.map(e => e.type), ['contact_removed', 'chat_request'])

  // mallory asks again, and again: 201 as from anyone, but alice hears nothing
  t.equal(await post(app, mallory.token, '/request_chat', { recipient_username: 'alice' }), 201)
  t.equal(await post(app, mallory.token, '/request_chat', { recipient_username: 'alice' }), 409, 'already requested, as for anyone')
  t.equal(await post(app, carol, '/request_chat', { recipient_username: 'alice' }), 201)
  for (const client of [aliceSocket, aliceLaptop]) t.match(await client.next(), { type: 'chat_request', requester_username: 'carol' })
  const aliceEvents = (await sync(t, app, alice.token)).events
  t.same(aliceEvents.filter(e => e.type === 'chat_request').map(e => e.requester_username), ['carol'], 'no request from mallory in her stream')

  // unblocking shows alice the request mallory believes pending; mallory hears nothing
  t.equal(await post(app, alice.token, '/unblock_user', { username: 'mallory' }), 200)
  for (const client of [aliceSocket, aliceLaptop]) t.match(await client.next(), { type: 'chat_request', requester_username: 'mallory' })
  t.equal(await post(app, mallory.token, '/request_chat', { recipient_username: 'alice' }), 409, 'still pending, as mallory believed')
  t.equal(await post(app, mallory.token, '/accept_chat', { requester_username: 'dave' }), 200)
  t.match(await mallorySocket.next(), { type: 'chat_accepted', username: 'dave' }, 'nothing from the unblock before it')

  for (const client of [aliceSocket, aliceLaptop, mallorySocket]) {
    t.same(client.invalid, [])
    await client.close()
  }
})
