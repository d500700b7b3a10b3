import { createHmac } from 'node:crypto'
import t from 'tap'
import { build, call, isError, snapshot, user } from './helper.js'

const PROTECTED: Array<{ method: 'GET' | 'POST', url: string, payload?: object }> = [
  { method: 'POST', url: '/upload_key', payload: { public_key: 'k' } },
  { method: 'GET', url: '/get_key?username=alice' },
  { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } },
  { method: 'GET', url: '/get_chat_requests' },
  { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } },
  { method: 'GET', url: '/get_contacts' },
  { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 'a', recipient_blob: 'b' } },
  { method: 'GET', url: '/get_messages?username=alice' }
]

function b64 (value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function forge (header: object, payload: object, secret: string): string {
  const unsigned = `${b64(header)}.${b64(payload)}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}

t.test('every protected endpoint refuses every kind of bad Authorization with a 401', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
  const headers: Array<[string, Record<string, string>, string]> = [
    ['no header', {}, 'MISSING_TOKEN'],
    ['empty header', { authorization: '' }, 'MISSING_TOKEN'],
    ['Bearer alone', { authorization: 'Bearer' }, 'MALFORMED_AUTHORIZATION'],
    ['Bearer and a space', { authorization: 'Bearer ' }, 'MALFORMED_AUTHORIZATION'],
    ['Basic', { authorization: 'Basic YWxpY2U6cHc=' }, 'MALFORMED_AUTHORIZATION'],
    ['token without scheme', { authorization: token }, 'MALFORMED_AUTHORIZATION'],
    ['two tokens', { authorization: `Bearer ${token} ${token}` }, 'MALFORMED_AUTHORIZATION'],
    ['garbage', { authorization: 'Bearer not-a-jwt' }, 'MALFORMED_AUTHORIZATION'],
    ['three garbage parts', { authorization: 'Bearer aaa.bbb.ccc' }, 'INVALID_TOKEN'],
    ['wrong signature', { authorization: `Bearer ${forge({ alg: 'HS256', typ: 'JWT' }, payload, 'another secret')}` }, 'INVALID_TOKEN'],
    ['alg none', { authorization: `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.` }, 'INVALID_TOKEN'],
    ['alg none with a signature', { authorization: `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.c2ln` }, 'INVALID_TOKEN'],
    ['tampered payload', { authorization: `Bearer ${token.split('.')[0]}.${b64({ ...payload, user_id: payload.user_id + 1 })}.${token.split('.')[2]}` }, 'INVALID_TOKEN']
  ]
  const before = await snapshot(app)
  for (const route of PROTECTED) {
    for (const [name, header, code] of headers) {
      const res = await app.inject({ method: route.method, url: route.url, ...(route.payload === undefined ? {} : { payload: route.payload }), headers: header })
      t.equal(res.statusCode, 401, `${route.method} ${route.url}: ${name}`)
      t.equal(res.json().code, code, `${route.url}: ${name} -> ${code}`)
    }
  }
  t.same(await snapshot(app), before, 'nothing changed')
})

t.test('an expired token is a 401 that says so', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
  const expired = app.jwt.sign({ ...payload, iat: undefined, exp: undefined }, { expiresIn: '1s', clockTimestamp: Date.now() - 60_000 } as never)
  isError(t, await call(app, expired, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_EXPIRED')
})

t.test('a token that worked stops working when it expires (verified tokens are remembered only until then)', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
  const shortLived = app.jwt.sign({ ...payload, iat: undefined, exp: undefined }, { expiresIn: '2s' } as never)
  t.equal((await call(app, shortLived, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'accepted while valid')
  t.equal((await call(app, shortLived, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'and again (now remembered)')
  await new Promise(resolve => setTimeout(resolve, 2100))
  isError(t, await call(app, shortLived, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_EXPIRED')
})

t.test('a token signed by this server but missing its claims is refused', async t => {
  const app = await build(t)
  await user(app, 'alice')
  for (const claims of [{ username: 'alice' }, { user_id: 'one', username: 'alice', jti: 'x', ver: 0 }, { user_id: 1, username: 'alice', ver: 0 }]) {
    const token = app.jwt.sign(claims as never)
    isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'INVALID_TOKEN')
  }
})

t.test('a token whose user no longer exists is a 401, and a new account with the same name does not inherit it', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const { id } = await app.db.selectFrom('users').select('id').executeTakeFirstOrThrow()
  const { eraseUser } = await import('../db/users.js')
  t.ok(await eraseUser(app.db, id))
  isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_GONE')
  await user(app, 'alice')
  isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_GONE')
})

t.test('a token of a disabled account stops working, and the account cannot log in (the same 401 as a wrong password)', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  await app.db.updateTable('users').set({ disabled_at: Date.now() }).execute()
  isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_DISABLED')
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: 'correct horse battery' } })
  isError(t, res, 401, 'INVALID_CREDENTIALS')
})

t.test('a revoked jti and an old token_version stop a token at once', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const second = await (await import('./helper.js')).login(app, 'alice')
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
  const { revokeToken } = await import('../db/sessions.js')
  await revokeToken(app.db, payload.jti, payload.user_id, payload.exp * 1000)
  isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_REVOKED')
  t.equal((await call(app, second, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'another session is unaffected')
  await app.db.updateTable('users').set(eb => ({ token_version: eb('token_version', '+', 1) })).execute()
  isError(t, await call(app, second, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_REVOKED')
})
