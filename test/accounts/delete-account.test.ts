import t from 'tap'
import { PASSWORD, befriend, build, call, isError, register, rowCounts, snapshot, user } from '../helper.js'

t.test('delete_account erases the user, their keys, requests, contacts, blocks and both sides of their messages', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  const carol = { name: 'carol', token: await user(app, 'carol') }
  const dave = { name: 'dave', token: await user(app, 'dave') }
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

  // events left: bob's 6 (a request, two acceptances, three messages), carol's 4 (a request, an acceptance, alice's request, a message)
  // and dave's 1 (alice's block of his request, which he sees as a decline)
  t.same(await rowCounts(app), { users: 3, public_keys: 0, chat_requests: 1, messages: 1, revoked_tokens: 0, blocks: 0, events: 11, admin_audit: 0, import_map: 0 }, 'only bob and carol\'s contact and message remain')
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
