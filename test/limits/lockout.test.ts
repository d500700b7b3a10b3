import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import t from 'tap'
import { sourceKey } from '../../plugins/app/source-key.js'
import { PASSWORD, build, call, isError, snapshot, user } from '../helper.js'

// Issue 12, item 4: wrong passwords must not lock the owner out of an account. Failed logins
// count per account and source address; past a higher count per account each address gets a
// single failure per window; change_password and delete_account (with a token) have a budget
// of their own per token. With REDIS_URL set (the PostgreSQL + Redis run) every count here is
// in Redis, under the test app's own REDIS_PREFIX.

// the per-IP limits are set high: these tests are about the failure budgets
const HIGH = { RATE_LIMIT: 'on', RATE_LIMIT_LOGIN: '1000/hour', RATE_LIMIT_REGISTER: '1000/hour' }

async function login (app: FastifyInstance, username: string, password: string, ip: string): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/login', payload: { username, password }, remoteAddress: ip })
}

function limited (t: Test, res: LightMyRequestResponse, message: RegExp, what: string): void {
  isError(t, res, 429, 'RATE_LIMITED')
  t.match(res.json().message, message, what)
  t.ok(Number(res.headers['retry-after']) > 0, `${what}: retry-after in seconds`)
}

t.test('an attacker failing at one address does not stop the owner at another', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '3/hour', RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: '100/hour' })
  await user(app, 'alice')
  for (let i = 0; i < 3; i++) isError(t, await login(app, 'alice', 'wrong password', '10.0.0.66'), 401, 'INVALID_CREDENTIALS')
  limited(t, await login(app, 'alice', PASSWORD, '10.0.0.66'), /failed password attempts/, 'the attacking address waits, even with the right password')
  limited(t, await login(app, 'ALICE', 'wrong password', '10.0.0.66'), /failed password attempts/, 'whatever the spelling of the name')
  isError(t, await login(app, 'alice', 'typo', '10.0.0.7'), 401, 'INVALID_CREDENTIALS')
  t.equal((await login(app, 'alice', PASSWORD, '10.0.0.7')).statusCode, 200, 'the owner at another address logs in')
})

t.test('past the account cap each address gets one failure per window, and a clean address still logs in', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '3/hour', RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: '5/hour' })
  await user(app, 'alice')
  await user(app, 'bob')
  for (const ip of ['10.0.1.1', '10.0.1.1', '10.0.1.1', '10.0.1.2', '10.0.1.2']) isError(t, await login(app, 'alice', 'wrong password', ip), 401)
  // the account has 5 failures, its cap: from now on one failure per address
  limited(t, await login(app, 'alice', PASSWORD, '10.0.1.2'), /failed password attempts/, 'an address with a failure waits although under its own 3')
  isError(t, await login(app, 'alice', 'wrong password', '10.0.1.3'), 401, 'INVALID_CREDENTIALS')
  limited(t, await login(app, 'alice', 'wrong password', '10.0.1.3'), /failed password attempts/, 'a new address has one guess')
  t.equal((await login(app, 'alice', PASSWORD, '10.0.1.4')).statusCode, 200, 'the owner at a clean address logs in')
  t.equal((await login(app, 'alice', PASSWORD, '10.0.1.4')).statusCode, 200, 'and again: successes do not count')
  for (let i = 0; i < 3; i++) isError(t, await login(app, 'bob', 'wrong password', '10.0.1.2'), 401, 'INVALID_CREDENTIALS') // another account keeps its own budget
})

t.test('an unknown account is counted like a real one', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '2/hour', RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: '3/hour' })
  await user(app, 'alice')
  const answers = async (username: string): Promise<Array<[number, string]>> => {
    const out: Array<[number, string]> = []
    for (const ip of ['10.0.2.1', '10.0.2.1', '10.0.2.1', '10.0.2.2', '10.0.2.3', '10.0.2.3']) {
      const res = await login(app, username, 'wrong password', ip)
      out.push([res.statusCode, res.json().code])
    }
    return out
  }
  const real = await answers('alice')
  t.same(real, [[401, 'INVALID_CREDENTIALS'], [401, 'INVALID_CREDENTIALS'], [429, 'RATE_LIMITED'], [401, 'INVALID_CREDENTIALS'], [401, 'INVALID_CREDENTIALS'], [429, 'RATE_LIMITED']])
  t.same(await answers('nobody'), real)
})

t.test('wrong passwords with a token never touch the login budget, and have one of their own per token', async t => {
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '2/hour', RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: '2/hour', RATE_LIMIT_SESSION_PASSWORD_FAILURES: '2/hour' })
  const stolen = await user(app, 'alice')
  const ip = '10.0.3.1'
  const change = async (token: string, old: string): Promise<LightMyRequestResponse> =>
    await call(app, token, { method: 'POST', url: '/change_password', payload: { old_password: old, new_password: 'new password 1' }, remoteAddress: ip })
  const erase = async (token: string, password: string): Promise<LightMyRequestResponse> =>
    await call(app, token, { method: 'POST', url: '/delete_account', payload: { password }, remoteAddress: ip })
  isError(t, await change(stolen, 'guess one'), 403, 'WRONG_PASSWORD')
  isError(t, await erase(stolen, 'guess two'), 403, 'WRONG_PASSWORD')
  const before = await snapshot(app)
  limited(t, await erase(stolen, PASSWORD), /with this token/, 'the token that guessed waits, even with the right password')
  limited(t, await change(stolen, PASSWORD), /with this token/, 'on both routes')
  t.same(await snapshot(app), before, 'a limited request changes and erases nothing')

  const res = await login(app, 'alice', PASSWORD, ip)
  t.equal(res.statusCode, 200, 'the login budget is untouched: the owner logs in from the same address')
  const owner = res.json().token as string
  isError(t, await change(owner, 'typo'), 403, 'WRONG_PASSWORD')
  t.equal((await change(owner, PASSWORD)).statusCode, 200, 'another token has a budget of its own')

  // and the other way: an exhausted login budget does not stop a token holder
  for (let i = 0; i < 2; i++) isError(t, await login(app, 'alice', 'wrong password', ip), 401)
  limited(t, await login(app, 'alice', 'new password 1', ip), /failed password attempts/, 'the login budget is spent')
  const fresh = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: 'new password 1' }, remoteAddress: '10.0.3.2' })
  t.equal(fresh.statusCode, 200, 'past the account cap, a clean address still logs in')
  t.equal((await erase(fresh.json().token as string, 'new password 1')).statusCode, 200, 'delete_account does not look at the login budget')
})

t.test('RATE_LIMIT=off turns these budgets off too', async t => {
  const app = await build(t, { RATE_LIMIT: 'off', RATE_LIMIT_LOGIN_FAILURES: '1/hour', RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: '1/hour', RATE_LIMIT_SESSION_PASSWORD_FAILURES: '1/hour' })
  const token = await user(app, 'alice')
  for (let i = 0; i < 3; i++) isError(t, await login(app, 'alice', 'wrong password', '10.0.4.1'), 401)
  for (let i = 0; i < 3; i++) isError(t, await call(app, token, { method: 'POST', url: '/delete_account', payload: { password: 'guess' } }), 403)
})

t.test('IPv6 sources count by /64, as the per-IP limits do', async t => {
  t.equal(sourceKey('10.0.0.1'), '10.0.0.1')
  t.equal(sourceKey('::ffff:10.0.0.1'), '10.0.0.1', 'an IPv4-mapped address is its IPv4 address')
  t.equal(sourceKey('2001:db8:a:b:1:2:3:4'), '2001:db8:a:b::/64')
  t.equal(sourceKey('2001:DB8:a:B::9'), '2001:db8:a:b::/64')
  t.equal(sourceKey('2001:db8::1:2:3:4:5'), '2001:db8:0:1::/64', ':: stands for the missing groups only')
  t.equal(sourceKey('::1'), '0:0:0:0::/64')
  t.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  t.equal(sourceKey('64:ff9b::1.2.3.4'), '64:ff9b:0:0::/64')
  const app = await build(t, { ...HIGH, RATE_LIMIT_LOGIN_FAILURES: '2/hour', RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: '100/hour' })
  await user(app, 'alice')
  isError(t, await login(app, 'alice', 'wrong password', '2001:db8:a:b::1'), 401)
  isError(t, await login(app, 'alice', 'wrong password', '2001:db8:a:b::2'), 401)
  limited(t, await login(app, 'alice', PASSWORD, '2001:db8:a:b::3'), /failed password attempts/, 'another address of the same /64 shares the budget')
  t.equal((await login(app, 'alice', PASSWORD, '2001:db8:a:c::1')).statusCode, 200, 'another /64 does not')
})
