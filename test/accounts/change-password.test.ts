import t from 'tap'
import { PASSWORD, build, call, isError, login, snapshot, user } from '../helper.js'

const NEW = 'a brand new passphrase'

t.test('change_password replaces the hash, kills every older token and hands out a fresh one', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const other = await login(app, 'alice')
  const before = await app.db.selectFrom('users').select(['password_hash', 'token_version']).executeTakeFirstOrThrow()
  const res = await call(app, token, { method: 'POST', url: '/change_password', payload: { old_password: PASSWORD, new_password: NEW } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.type(body.message, 'string')
  t.equal(body.expires_in, 86400)
  const after = await app.db.selectFrom('users').select(['password_hash', 'token_version']).executeTakeFirstOrThrow()
  t.not(after.password_hash, before.password_hash)
  t.match(after.password_hash, /^\$argon2id\$/)
  t.equal(after.token_version, before.token_version + 1)
  isError(t, await call(app, token, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_REVOKED')
  isError(t, await call(app, other, { method: 'GET', url: '/get_contacts' }), 401, 'TOKEN_REVOKED')
  t.equal((await call(app, body.token, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'the fresh token works')
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } }), 401, 'INVALID_CREDENTIALS')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: NEW } })).statusCode, 200)
})

t.test('a wrong old password is a 403 and changes nothing', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const before = await app.db.selectFrom('users').selectAll().executeTakeFirstOrThrow()
  const res = await call(app, token, { method: 'POST', url: '/change_password', payload: { old_password: 'not my password', new_password: NEW } })
  isError(t, res, 403, 'WRONG_PASSWORD')
  t.same(await app.db.selectFrom('users').selectAll().executeTakeFirstOrThrow(), before)
  t.equal((await call(app, token, { method: 'GET', url: '/get_contacts' })).statusCode, 200, 'the token still works')
})

t.test('two changes racing from the same old password: exactly one wins', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const results = await Promise.all(['first new password', 'second new password'].map(async newPassword =>
    await call(app, token, { method: 'POST', url: '/change_password', payload: { old_password: PASSWORD, new_password: newPassword } })))
  const codes = results.map(res => res.statusCode).sort()
  t.ok(codes[0] === 200 && codes[1] !== 200, `one 200 and one refusal: ${codes.join(', ')}`)
  const row = await app.db.selectFrom('users').select('token_version').executeTakeFirstOrThrow()
  t.equal(row.token_version, 1)
})

t.test('bad change_password bodies are 400s naming the field and write nothing', async t => {
  const app = await build(t)
  const token = await user(app, 'alice')
  const before = await snapshot(app)
  const hash = (await app.db.selectFrom('users').select('password_hash').executeTakeFirstOrThrow()).password_hash
  const cases: Array<[unknown, RegExp]> = [
    [{}, /old_password|new_password/],
    [{ old_password: PASSWORD }, /new_password/],
    [{ new_password: NEW }, /old_password/],
    [{ old_password: PASSWORD, new_password: 'short' }, /new_password/],
    [{ old_password: PASSWORD, new_password: 'x'.repeat(1025) }, /new_password/],
    [{ old_password: PASSWORD, new_password: 12345678 }, /new_password/],
    [{ old_password: true, new_password: NEW }, /old_password/],
    [{ old_password: '', new_password: NEW }, /old_password/],
    [[PASSWORD, NEW], /body/]
  ]
  for (const [payload, field] of cases) {
    const res = await call(app, token, { method: 'POST', url: '/change_password', payload: payload as object })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, field, `${JSON.stringify(payload)} names ${field}`)
  }
  isError(t, await app.inject({ method: 'POST', url: '/change_password', payload: { old_password: PASSWORD, new_password: NEW } }), 401, 'MISSING_TOKEN')
  t.same(await snapshot(app), before)
  t.equal((await app.db.selectFrom('users').select('password_hash').executeTakeFirstOrThrow()).password_hash, hash)
})
