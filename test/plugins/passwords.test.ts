import { hash } from '@node-rs/argon2'
import t from 'tap'
import { werkzeugPbkdf2 } from '../fixtures/original.js'
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

t.test('hashes an earlier import stored: raw Werkzeug ones still log in and are upgraded; Argon2 beyond the bounds never verifies', async t => {
  const app = await build(t)
  const within = await hash('argon pw', { memoryCost: 8192, timeCost: 3, parallelism: 2 })
  await app.db.insertInto('users').values([
    { username: 'legacy', username_key: 'legacy', password_hash: werkzeugPbkdf2('legacy pw', 'salt', 1000), created_at: Date.now() },
    { username: 'huge', username_key: 'huge', password_hash: within.replace('m=8192,t=3,p=2', 'm=262144,t=8,p=1'), created_at: Date.now() }
  ]).execute()
  const hashOf = async (name: string) => (await app.db.selectFrom('users').select('password_hash').where('username', '=', name).executeTakeFirstOrThrow()).password_hash
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'legacy', password: 'wrong pw' } }), 401, 'INVALID_CREDENTIALS')
  t.match(await hashOf('legacy'), /^pbkdf2:sha256:1000\$/)
  t.ok(await login(app, 'legacy', 'legacy pw'))
  t.match(await hashOf('legacy'), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  t.ok(await login(app, 'legacy', 'legacy pw'), 'and with the upgraded hash')
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'huge', password: 'argon pw' } }), 401, 'INVALID_CREDENTIALS')
})
