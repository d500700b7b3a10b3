import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, befriend, build, call, isError, register, rowCounts, snapshot, user } from '../helper.js'
import { send, sync, type Person } from '../realtime-helper.js'

async function people (app: FastifyInstance): Promise<[Person, Person, Person, Person]> {
  const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map(async name => ({ name, token: await user(app, name) })))
  return [alice!, bob!, carol!, dave!]
}

t.test('delete_account erases the user, their keys, requests, contacts, blocks and both sides of their messages', async t => {
  const app = await build(t)
  const [alice, bob, carol, dave] = await people(app)
  await befriend(app, alice, bob)
  await befriend(app, bob, carol)
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'alice key' } })
  await call(app, alice.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'carol' } })
  await call(app, dave.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  await call(app, alice.token, { method: 'POST', url: '/block_user', payload: { username: 'dave' } })
  await call(app, carol.token, { method: 'POST', url: '/block_user', payload: { username: 'alice' } })
  for (const [from, to] of [[alice, bob], [bob, alice], [bob, carol]] as const) {
    const sent = await call(app, from.token, { method: 'POST', url: '/send_message', payload: { recipient_username: to.name, sender_blob: 's', recipient_blob: 'r' } })
    t.equal(sent.statusCode, 201)
  }

  const res = await call(app, alice.token, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { message: 'Account deleted.' })

  // events left: bob's 3 (his acceptance of carol, his message to her, contact_deleted) and carol's 4 (bob's request, the
  // acceptance, bob's message, contact_deleted); those that named alice went with her
  // (dave's decline of alice's block among them: he had been blocked by her, and is told nothing)
  t.same(await rowCounts(app), { users: 3, devices: 3, public_keys: 0, one_time_prekeys: 0, signed_prekeys: 0, claimed_prekeys: 0, chat_requests: 1, messages: 1, sends: 0, envelopes: 0, revoked_tokens: 0, blocks: 0, events: 7, admin_audit: 0, import_map: 0 }, 'only bob and carol\'s contact and message remain')
  isError(t, await call(app, alice.token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_GONE')
  t.same((await call(app, bob.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: ['carol'] })
  const history = await call(app, bob.token, { method: 'GET', url: '/get_messages?username=carol' })
  t.equal(history.json().messages.length, 1)
  isError(t, await call(app, bob.token, { method: 'GET', url: '/get_key?username=alice' }), 404, 'USER_NOT_FOUND')
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } }), 401, 'INVALID_CREDENTIALS')
})

t.test('the name can be registered again, and the old token does not work for the new account', async t => {
  const app = await build(t)
  const old = await user(app, 'alice')
  await call(app, old, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })
  t.equal((await register(app, 'Alice')).statusCode, 201)
  isError(t, await call(app, old, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_GONE')
})

t.test('a wrong password is a 403 and erases nothing', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const before = await snapshot(app)
  isError(t, await call(app, token, { method: 'POST', url: '/delete_account', payload: { password: 'not my password' } }), 403, 'WRONG_PASSWORD')
  t.same(await snapshot(app), before)
})

t.test('bad delete_account requests are 400s or 401s and erase nothing', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const before = await snapshot(app)
  for (const payload of [{}, { password: '' }, { password: 12345678 }, { password: null }, { password: 'x'.repeat(1025) }, { pass: PASSWORD }]) {
    const res = await call(app, token, { method: 'POST', url: '/delete_account', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /password/)
  }
  isError(t, await app.inject({ method: 'POST', url: '/delete_account', payload: { password: PASSWORD } }), 401, 'MISSING_TOKEN')
  t.same(await snapshot(app), before)
})

t.test('partners lose every event that named the user and get one contact_deleted that names nobody; their cursors keep working', async t => {
  const app = await build(t)
  const [alice, bob, carol, dave] = await people(app)
  await befriend(app, alice, bob)
  await send(app, alice, bob)
  await send(app, bob, alice)
  await call(app, carol.token, { method: 'POST', url: '/block_user', payload: { username: 'alice' } })
  await call(app, alice.token, { method: 'POST', url: '/block_user', payload: { username: 'dave' } })
  const bobBefore = await sync(t, app, bob.token)
  t.ok(bobBefore.events.length >= 4 && bobBefore.events.every(event => JSON.stringify(event).includes('alice')), 'each of bob\'s events named alice')
  const daveBefore = await sync(t, app, dave.token)

  // a long-poll of bob's, waiting when alice leaves, is woken by the news
  const polled = call(app, bob.token, { method: 'GET', url: '/sync', query: { since: bobBefore.next, timeout: '20' } })
  const started = Date.now()
  t.equal((await call(app, alice.token, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })).statusCode, 200)
  const woken = (await polled).json()
  t.ok(Date.now() - started < 10_000, 'at once, not at the long-poll\'s timeout')
  t.match(woken.events, [{ type: 'contact_deleted' }])
  t.same(Object.keys(woken.events[0]).sort(), ['cursor', 'timestamp', 'type'], 'the event names nobody')

  const fromScratch = await sync(t, app, bob.token)
  t.same(fromScratch.events.map(event => event.type), ['contact_deleted'], 'bob\'s stream kept nothing that named alice')
  t.notMatch(JSON.stringify(fromScratch), /alice/)
  // a cursor that pointed at an event now gone still reads on from there
  const fromGone = await sync(t, app, bob.token, { since: bobBefore.events[0].cursor })
  t.same(fromGone.events.map(event => event.type), ['contact_deleted'])
  t.equal(fromGone.next, woken.next)
  t.same((await sync(t, app, carol.token)).events.map(event => event.type), ['contact_deleted'], 'carol, who had blocked alice, is told: her block list changed')
  t.same((await call(app, carol.token, { method: 'GET', url: '/get_blocked' })).json(), { blocked: [] })
  t.same(await sync(t, app, dave.token), daveBefore, 'dave, whom alice had blocked, sees nothing: nothing he could see changed')
})

t.test('a user erased with no contact, request or block tells nobody', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  await user(app, 'bob')
  const before = await rowCounts(app)
  t.equal((await call(app, alice, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })).statusCode, 200)
  t.same(await rowCounts(app), { ...before, users: 1, devices: 1 })
})
