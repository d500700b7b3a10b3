import t from 'tap'
import { PASSWORD, build, call, isError, register, user } from '../helper.js'

t.test('login returns an HS256 token with user_id, username, jti and a 24 h expiry', async t => {
  const app = await build(t)
  await register(app, 'Alice')
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } })
  t.equal(res.statusCode, 200)
  const { token, expires_in: expiresIn } = res.json()
  t.equal(expiresIn, 86400)
  const [header, payload] = token.split('.').slice(0, 2).map((part: string) => JSON.parse(Buffer.from(part, 'base64url').toString()))
  t.equal(header.alg, 'HS256')
  t.equal(payload.username, 'Alice', 'the stored spelling, whatever case was typed')
  t.type(payload.user_id, 'number')
  t.type(payload.jti, 'string')
  t.equal(payload.exp - payload.iat, 86400)
  t.equal(payload.device_id, 1, 'a login that names no device is device 1')
  t.equal(res.json().device_id, 1)
  t.type(payload.dk, 'number')
})

t.test('TOKEN_TTL sets the expiry', async t => {
  const app = await build(t, { TOKEN_TTL: '2h' })
  await register(app, 'alice')
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } })
  t.equal(res.json().expires_in, 7200)
  const payload = JSON.parse(Buffer.from(res.json().token.split('.')[1], 'base64url').toString())
  t.equal(payload.exp - payload.iat, 7200)
})

t.test('an unknown user and a wrong password get the same answer', async t => {
  const app = await build(t)
  await register(app, 'alice')
  const wrong = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: 'wrong password' } })
  const unknown = await app.inject({ method: 'POST', url: '/login', payload: { username: 'nobody', password: 'wrong password' } })
  isError(t, wrong, 401, 'INVALID_CREDENTIALS')
  isError(t, unknown, 401, 'INVALID_CREDENTIALS')
  t.equal(wrong.body, unknown.body)
})

t.test('a disabled account answers its right password as a wrong one, and counts it as a failure', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_LOGIN_FAILURES: '2/hour' })
  const token = await user(app, 'alice')
  await register(app, 'bob')
  await app.db.updateTable('users').set({ disabled_at: Date.now() }).where('username', '=', 'alice').execute()
  const attempt = async (username: string, password: string) => await app.inject({ method: 'POST', url: '/login', payload: { username, password } })
  // alice (disabled) with her right password, bob (enabled) with a wrong one: the same answers, one for one
  const right = [await attempt('alice', PASSWORD), await attempt('alice', PASSWORD), await attempt('alice', PASSWORD)]
  const wrong = [await attempt('bob', 'wrong password'), await attempt('bob', 'wrong password'), await attempt('bob', 'wrong password')]
  for (const [i, res] of right.entries()) {
    const other = wrong[i]!
    t.equal(res.statusCode, other.statusCode, `attempt ${i + 1}: the same status`)
    t.equal(res.body, other.body, `attempt ${i + 1}: the same body`)
  }
  isError(t, right[0]!, 401, 'INVALID_CREDENTIALS')
  isError(t, right[2]!, 429, 'RATE_LIMITED')
  // a token issued before the account was disabled says why it stopped: its holder had the password
  isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_DISABLED')
})

t.test('missing or wrong-typed login fields are 400s naming the field', async t => {
  const app = await build(t)
  for (const payload of [{}, { username: 'alice' }, { password: PASSWORD }, { username: 'alice', password: 5 }, { username: null, password: PASSWORD }, { username: 'alice', password: '' }]) {
    const res = await app.inject({ method: 'POST', url: '/login', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /username|password/)
  }
})
