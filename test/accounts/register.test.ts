import t from 'tap'
import { PASSWORD, build, isError, register, rowCounts, snapshot } from '../helper.js'

t.test('register creates an account that can log in', async t => {
  const app = await build(t)
  const res = await register(app, 'alice')
  t.equal(res.statusCode, 201)
  t.same(res.json(), { message: 'User registered successfully.' })
  const row = await app.db.selectFrom('users').selectAll().executeTakeFirstOrThrow()
  t.equal(row.username, 'alice')
  t.match(row.password_hash, /^\$argon2id\$/, 'stored as an Argon2id hash')
  t.notMatch(row.password_hash, PASSWORD)
  const login = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD } })
  t.equal(login.statusCode, 200)
})

t.test('usernames are unique case-insensitively and keep their case', async t => {
  const app = await build(t)
  t.equal((await register(app, 'Alice')).statusCode, 201)
  const before = await snapshot(app)
  isError(t, await register(app, 'alice'), 409, 'USERNAME_TAKEN')
  isError(t, await register(app, 'ALICE'), 409, 'USERNAME_TAKEN')
  t.same(await snapshot(app), before)
  const row = await app.db.selectFrom('users').select('username').executeTakeFirstOrThrow()
  t.equal(row.username, 'Alice')
})

t.test('bad registrations are 400s that name the field and store nothing', async t => {
  const app = await build(t)
  const cases: Array<[unknown, RegExp]> = [
    [{ password: PASSWORD }, /username/],
    [{ username: 'alice' }, /password/],
    [{ username: 'al', password: PASSWORD }, /username/],
    [{ username: 'a'.repeat(33), password: PASSWORD }, /username/],
    [{ username: 'al ice', password: PASSWORD }, /username/],
    [{ username: 'alice!', password: PASSWORD }, /username/],
    [{ username: 'alicé', password: PASSWORD }, /username/],
    [{ username: '../../etc', password: PASSWORD }, /username/],
    [{ username: 'alice', password: 'short' }, /password/],
    [{ username: 'alice', password: 'x'.repeat(1025) }, /password/],
    [{ username: 12345, password: PASSWORD }, /username/],
    [{ username: ['alice'], password: PASSWORD }, /username/],
    [{ username: 'alice', password: 12345678 }, /password/],
    [{ username: 'alice', password: null }, /password/],
    [{ username: 'alice', password: true }, /password/],
    [[], /body/],
    ['"alice"', /body/]
  ]
  for (const [payload, field] of cases) {
    const res = await app.inject({ method: 'POST', url: '/register', payload: payload as object, headers: { 'content-type': 'application/json' } })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, field, `${JSON.stringify(payload)} names ${field}`)
  }
  const empty = await app.inject({ method: 'POST', url: '/register' })
  isError(t, empty, 400)
  t.same((await rowCounts(app)).users, 0)
})

t.test('unknown fields are ignored, never stored', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'POST', url: '/register', payload: { username: 'alice', password: PASSWORD, id: 99, is_admin: true } })
  t.equal(res.statusCode, 201)
  const row = await app.db.selectFrom('users').select('id').executeTakeFirstOrThrow()
  t.not(row.id, 99)
})
