import t from 'tap'
import { befriend, build, call, isError, snapshot, user } from '../helper.js'

const message = (to: string): object => ({ method: 'POST', url: '/send_message', payload: { recipient_username: to, sender_blob: 's', recipient_blob: 'r' } })

t.test('remove_contact ends a contact from either side; messages then need a new request', async t => {
  for (const remover of ['alice', 'bob'] as const) {
    const app = await build(t)
    const alice = { name: 'alice', token: await user(app, 'alice') }
    const bob = { name: 'bob', token: await user(app, 'bob') }
    await befriend(app, alice, bob)
    t.equal((await call(app, alice.token, message('bob') as never)).statusCode, 201)
    const me = remover === 'alice' ? alice : bob
    const other = remover === 'alice' ? bob : alice
    const res = await call(app, me.token, { method: 'POST', url: '/remove_contact', payload: { username: other.name } })
    t.equal(res.statusCode, 200, `${remover} removes`)
    t.same((await call(app, alice.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
    t.same((await call(app, bob.token, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] })
    isError(t, await call(app, alice.token, message('bob') as never), 403, 'NOT_A_CONTACT')
    isError(t, await call(app, bob.token, message('alice') as never), 403, 'NOT_A_CONTACT')
    t.equal((await call(app, bob.token, { method: 'GET', url: '/get_messages?username=alice' })).json().messages.length, 1, 'history stays')
    await befriend(app, bob, alice)
    t.equal((await call(app, bob.token, message('alice') as never)).statusCode, 201, 'a new request and acceptance restore messaging')
  }
})

t.test('removing someone who is not a contact is a 404 and changes nothing', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
  const before = await snapshot(app)
  isError(t, await call(app, alice, { method: 'POST', url: '/remove_contact', payload: { username: 'bob' } }), 404, 'NOT_YOUR_CONTACT')
  isError(t, await call(app, bob, { method: 'POST', url: '/remove_contact', payload: { username: 'alice' } }), 404, 'NOT_YOUR_CONTACT')
  isError(t, await call(app, bob, { method: 'POST', url: '/remove_contact', payload: { username: 'bob' } }), 404, 'NOT_YOUR_CONTACT')
  isError(t, await call(app, bob, { method: 'POST', url: '/remove_contact', payload: { username: 'nobody' } }), 404, 'USER_NOT_FOUND')
  for (const payload of [{}, { username: '' }, { username: ['alice'] }, { username: 'x'.repeat(33) }]) {
    const res = await call(app, bob, { method: 'POST', url: '/remove_contact', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /username/)
  }
  t.same(await snapshot(app), before)
})
