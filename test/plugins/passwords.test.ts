import t from 'tap'
import { build, isError, login, register } from '../helper.js'

// Password hashing runs at most PASSWORD_HASH_CONCURRENCY at a time, so that a storm of
// logins leaves a core to everything else.

t.test('with one slot, concurrent registrations and logins all succeed in turn', async t => {
  const app = await build(t, { PASSWORD_HASH_CONCURRENCY: '1' })
  const names = ['ann', 'ben', 'cat', 'dan']
  const registered = await Promise.all(names.map(async name => await register(app, name)))
  t.same(registered.map(r => r.statusCode), [201, 201, 201, 201])
  const tokens = await Promise.all(names.map(async name => await login(app, name)))
  t.equal(tokens.filter(token => typeof token === 'string' && token.length > 0).length, 4)
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'ann', password: 'wrong password here' } }), 401, 'INVALID_CREDENTIALS')
})
