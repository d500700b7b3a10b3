import t from 'tap'
import { PASSWORD, befriend, build, call, isError, register, snapshot, user } from './helper.js'

t.test('register is limited per IP with 429, retry-after and x-ratelimit headers, and a limited request stores nothing', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_REGISTER: '2/hour' })
  t.equal((await register(app, 'user1')).statusCode, 201)
  const second = await register(app, 'user2')
  t.equal(second.statusCode, 201)
  t.equal(second.headers['x-ratelimit-limit'], '2')
  t.equal(second.headers['x-ratelimit-remaining'], '0')
  const before = await snapshot(app)
  const limited = await register(app, 'user3')
  isError(t, limited, 429, 'RATE_LIMITED')
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after in seconds')
  t.same(await snapshot(app), before, 'no user created')
  const otherIp = await app.inject({ method: 'POST', url: '/register', payload: { username: 'user4', password: PASSWORD }, remoteAddress: '10.0.0.2' })
  t.equal(otherIp.statusCode, 201, 'another IP has its own budget')
})

t.test('X-Forwarded-For is ignored unless TRUST_PROXY is set', async t => {
  const untrusting = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_LOGIN: '1/hour' })
  const login = async (app: typeof untrusting, ip: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/login', payload: { username: 'nobody', password: 'whatever1' }, headers: { 'x-forwarded-for': ip } })).statusCode
  t.equal(await login(untrusting, '1.1.1.1'), 401)
  t.equal(await login(untrusting, '2.2.2.2'), 429, 'a forged header does not buy a new budget')

  const trusting = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_LOGIN: '1/hour', TRUST_PROXY: 'true' })
  t.equal(await login(trusting, '1.1.1.1'), 401)
  t.equal(await login(trusting, '2.2.2.2'), 401, 'each client behind the proxy has its own budget')
  t.equal(await login(trusting, '1.1.1.1'), 429)
})

t.test('each limited route has its own setting; RATE_LIMIT=off lifts them all', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_REQUEST_CHAT: '1/minute', RATE_LIMIT_ACCEPT_CHAT: '1/minute', RATE_LIMIT_SEND_MESSAGE: '2/hour', RATE_LIMIT_REGISTER: '100/hour' })
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await user(app, 'carol')
  t.equal((await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })).statusCode, 201)
  isError(t, await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'carol' } }), 429, 'RATE_LIMITED')
  t.equal((await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } })).statusCode, 200)
  isError(t, await call(app, bob, { method: 'POST', url: '/accept_chat', payload: { requester_username: 'carol' } }), 429)
  const message = { recipient_username: 'bob', sender_blob: 's', recipient_blob: 'r' }
  t.equal((await call(app, alice, { method: 'POST', url: '/send_message', payload: message })).statusCode, 201)
  t.equal((await call(app, alice, { method: 'POST', url: '/send_message', payload: message })).statusCode, 201)
  const before = await snapshot(app)
  isError(t, await call(app, alice, { method: 'POST', url: '/send_message', payload: message }), 429)
  t.same(await snapshot(app), before, 'the limited message was not stored')

  const open = await build(t, { RATE_LIMIT: 'off', RATE_LIMIT_SEND_MESSAGE: '1/hour' })
  const a = { name: 'alice', token: await user(open, 'alice') }
  const b = { name: 'bob', token: await user(open, 'bob') }
  await befriend(open, a, b)
  for (let i = 0; i < 5; i++) t.equal((await call(open, a.token, { method: 'POST', url: '/send_message', payload: message })).statusCode, 201)
})
