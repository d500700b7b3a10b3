import t from 'tap'
import { PASSWORD, build, call, isError, login, snapshot, user } from '../helper.js'

t.test('logout revokes the presented token at once, and only that one', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const other = await login(app, 'alice')
  const res = await call(app, token, { method: 'POST', url: '/logout' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { message: 'Logged out.' })
  isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_REVOKED')
  isError(t, await call(app, token, { method: 'POST', url: '/logout' }), 401, 'TOKEN_REVOKED')
  t.equal((await call(app, other, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'another session stays logged in')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } })).statusCode, 200, 'logging in again works')
})

t.test('the revocation is stored with the token expiry, so it can be purged later', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
  await call(app, token, { method: 'POST', url: '/logout' })
  const rows = await app.db.selectFrom('revoked_tokens').selectAll().execute()
  t.equal(rows.length, 1)
  t.equal(rows[0]?.jti, payload.jti)
  t.equal(rows[0]?.expires_at, payload.exp * 1000)
})

t.test('a logout also purges revocations of tokens that have expired anyway', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const { id } = await app.db.selectFrom('users').select('id').executeTakeFirstOrThrow()
  await app.db.insertInto('revoked_tokens').values([
    { jti: 'long-expired', user_id: id, expires_at: Date.now() - 1000 },
    { jti: 'still-valid', user_id: id, expires_at: Date.now() + 3_600_000 }
  ]).execute()
  await call(app, token, { method: 'POST', url: '/logout' })
  const left = (await app.db.selectFrom('revoked_tokens').select('jti').execute()).map(row => row.jti).sort()
  t.equal(left.length, 2)
  t.ok(left.includes('still-valid') && !left.includes('long-expired'))
})

t.test('the revocation holds on another instance sharing the database', { skip: process.env.DATABASE_URL?.startsWith('postgres') !== true && 'PostgreSQL only (an in-memory SQLite database is per instance)' }, async t => {
  const { buildApp } = await import('../../app.js')
  const app = await build(t, { JWT_SECRET: 'x'.repeat(16) + 'abcdefghijklmnop' })
  const twin = await buildApp(app.config)
  t.teardown(async () => { await twin.close() })
  const token = await user(app, 'alice')
  t.equal((await call(twin, token, { method: 'GET', url: '/get_contacts' })).statusCode, 200)
  await call(app, token, { method: 'POST', url: '/logout' })
  isError(t, await call(twin, token, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_REVOKED')
})

t.test('logout without a valid token is a 401 and writes nothing', async t => {
  const app = await build(t)
  await user(app, 'alice')
  const before = await snapshot(app)
  isError(t, await app.inject({ method: 'POST', url: '/logout' }), 401, 'MISSING_TOKEN')
  isError(t, await app.inject({ method: 'POST', url: '/logout', headers: { authorization: 'Bearer' } }), 401, 'MALFORMED_AUTHORIZATION')
  isError(t, await app.inject({ method: 'POST', url: '/logout', headers: { authorization: 'Bearer a.b.c' } }), 401, 'INVALID_TOKEN')
  t.same(await snapshot(app), before)
})
