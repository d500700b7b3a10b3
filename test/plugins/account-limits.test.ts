import { randomBytes } from 'node:crypto'
import t from 'tap'
import { PASSWORD, befriend, build, call, isError, redisUrl, snapshot, user } from '../helper.js'

// Per-account limits hold whatever IP a request comes from; per-IP limits are set high here.
const HIGH = { RATE_LIMIT: 'on', RATE_LIMIT_SEND_MESSAGE: '1000/hour', RATE_LIMIT_LOGIN: '1000/hour', RATE_LIMIT_REGISTER: '1000/hour', RATE_LIMIT_REQUEST_CHAT: '1000/hour', RATE_LIMIT_ACCEPT_CHAT: '1000/hour' }

function send (to: string, ip: string): { method: 'POST', url: string, payload: object, remoteAddress: string } {
  return { method: 'POST', url: '/send_message', payload: { recipient_username: to, sender_blob: 's', recipient_blob: 'r' }, remoteAddress: ip }
}

async function trio (app: Parameters<typeof user>[0]): Promise<Record<'alice' | 'bob' | 'carol', { name: string, token: string }>> {
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  const carol = { name: 'carol', token: await user(app, 'carol') }
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  return { alice, bob, carol }
}

t.test('send_message is limited per sender across IPs, with 429, retry-after and no side effect', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_SEND_MESSAGE_SENDER: '3/hour', RATE_LIMIT_SEND_MESSAGE_PAIR: '100/hour' })
  const { alice, bob } = await trio(app)
  for (const [to, ip] of [['bob', '10.0.0.1'], ['carol', '10.0.0.2'], ['bob', '10.0.0.3']]) {
    t.equal((await call(app, alice.token, send(to ?? '', ip ?? ''))).statusCode, 201)
  }
  const before = await snapshot(app)
  const limited = await call(app, alice.token, send('carol', '10.0.0.4'))
  isError(t, limited, 429, 'RATE_LIMITED')
  t.match(limited.json().message, /messages/)
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after in seconds')
  t.same(await snapshot(app), before, 'nothing stored')
  t.equal((await call(app, bob.token, send('alice', '10.0.0.4'))).statusCode, 201, 'another sender is not affected')
})

t.test('send_message is limited per sender->recipient pair', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_SEND_MESSAGE_SENDER: '100/hour', RATE_LIMIT_SEND_MESSAGE_PAIR: '2/hour' })
  const { alice } = await trio(app)
  t.equal((await call(app, alice.token, send('bob', '10.0.0.1'))).statusCode, 201)
  t.equal((await call(app, alice.token, send('BOB', '10.0.0.2'))).statusCode, 201)
  const limited = await call(app, alice.token, send('bob', '10.0.0.3'))
  isError(t, limited, 429, 'RATE_LIMITED')
  t.match(limited.json().message, /recipient/)
  t.ok(Number(limited.headers['retry-after']) > 0)
  t.equal((await call(app, alice.token, send('carol', '10.0.0.3'))).statusCode, 201, 'another recipient is not affected')
})

t.test('failed logins are limited per account and address; the right password then waits too', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '3/hour' })
  await user(app, 'alice')
  await user(app, 'bob')
  const attempt = async (username: string, password: string, ip: string): Promise<Awaited<ReturnType<typeof app.inject>>> =>
    await app.inject({ method: 'POST', url: '/login', payload: { username, password }, remoteAddress: ip })
  for (let i = 0; i < 3; i++) isError(t, await attempt('alice', 'wrong password', '10.0.0.1'), 401, 'INVALID_CREDENTIALS')
  const limited = await attempt('ALICE', PASSWORD, '10.0.0.1')
  isError(t, limited, 429, 'RATE_LIMITED')
  t.match(limited.json().message, /failed password attempts/)
  t.ok(Number(limited.headers['retry-after']) > 0)
  t.equal((await attempt('alice', PASSWORD, '10.0.0.9')).statusCode, 200, 'another address is not affected (test/limits/lockout.test.ts)')
  t.equal((await attempt('bob', PASSWORD, '10.0.0.1')).statusCode, 200, 'another account is not affected')
})

t.test('an unknown account is limited exactly like a real one (no way to tell them apart)', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '2/hour' })
  await user(app, 'alice')
  const answers = async (username: string): Promise<Array<[number, string]>> => {
    const out: Array<[number, string]> = []
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'POST', url: '/login', payload: { username, password: 'wrong password' } })
      out.push([res.statusCode, res.json().code])
    }
    return out
  }
  t.same(await answers('alice'), await answers('nobody'))
  t.same(await answers('nobody2'), [[401, 'INVALID_CREDENTIALS'], [401, 'INVALID_CREDENTIALS'], [429, 'RATE_LIMITED']])
})

t.test('wrong passwords on change_password and delete_account count per token, apart from the login budget', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '1/hour', RATE_LIMIT_SESSION_PASSWORD_FAILURES: '2/hour' })
  const token = await user(app, 'alice')
  isError(t, await call(app, token, { method: 'POST', url: '/change_password', payload: { old_password: 'guess one', new_password: 'new password 1' } }), 403, 'WRONG_PASSWORD')
  isError(t, await call(app, token, { method: 'POST', url: '/delete_account', payload: { password: 'guess two' } }), 403, 'WRONG_PASSWORD')
  const before = await snapshot(app)
  const limited = await call(app, token, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })
  isError(t, limited, 429, 'RATE_LIMITED')
  t.ok(Number(limited.headers['retry-after']) > 0)
  t.same(await snapshot(app), before, 'a limited request erases nothing')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } })).statusCode, 200, 'the login budget is untouched')
})

t.test('successful logins do not count as failures', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '2/hour' })
  await user(app, 'alice')
  for (let i = 0; i < 4; i++) {
    t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } })).statusCode, 200)
  }
})

t.test('RATE_LIMIT=off turns the per-account limits off too', async t => {
  const app = await build(t, { RATE_LIMIT: 'off', RATE_LIMIT_SEND_MESSAGE_SENDER: '1/hour', RATE_LIMIT_SEND_MESSAGE_PAIR: '1/hour', RATE_LIMIT_LOGIN_FAILURES: '1/hour', RATE_LIMIT_SESSION_PASSWORD_FAILURES: '1/hour' })
  const { alice } = await trio(app)
  for (let i = 0; i < 3; i++) t.equal((await call(app, alice.token, send('bob', '10.0.0.1'))).statusCode, 201)
  for (let i = 0; i < 3; i++) isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: 'wrong password' } }), 401)
})

t.test('with REDIS_URL, per-account counts are shared by every instance', { skip: redisUrl === undefined && 'REDIS_URL not set' }, async t => {
  // a name of its own: counters in Redis outlive the test for their window
  const name = `u${randomBytes(6).toString('hex')}`
  // instances of one service share JWT_SECRET, which also keys the names of their counters
  const env = { ...HIGH, JWT_SECRET: randomBytes(32).toString('base64'), REDIS_URL: redisUrl ?? '', REDIS_PREFIX: `test-${name}:`, RATE_LIMIT_LOGIN_FAILURES: '2/hour' }
  const one = await build(t, env)
  const two = await build(t, env)
  await user(one, name)
  await user(two, name)
  const fail = async (app: typeof one): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/login', payload: { username: name, password: 'wrong password' } })).statusCode
  t.equal(await fail(one), 401)
  t.equal(await fail(two), 401)
  isError(t, await one.inject({ method: 'POST', url: '/login', payload: { username: name, password: PASSWORD } }), 429, 'RATE_LIMITED')
  isError(t, await two.inject({ method: 'POST', url: '/login', payload: { username: name, password: PASSWORD } }), 429, 'RATE_LIMITED')
})
