import { Ajv } from 'ajv'
import fc from 'fast-check'
import t from 'tap'
import { isValidUsername, requireUser, usernameKey } from '../../db/users.js'
import { Username } from '../../routes/schemas.js'
import { build, register } from '../helper.js'

// The username rule is written once (db/users.ts); the API's schema, the import of the
// original database and every lookup follow it.

t.test('usernameKey folds case, and only case', async t => {
  t.equal(usernameKey('Alice'), 'alice')
  t.equal(usernameKey('ALICE'), usernameKey('alice'))
  t.equal(usernameKey('a.B_c-9'), 'a.b_c-9')
  t.not(usernameKey('alice'), usernameKey('alice_'))
})

t.test('isValidUsername: 3 to 32 of a-z A-Z 0-9 _ . -', async t => {
  for (const good of ['abc', 'Bob', 'a.b', 'x_y-z', '0'.repeat(32)]) t.ok(isValidUsername(good), good)
  for (const bad of ['', 'ab', '0'.repeat(33), 'a b', 'ali$e', 'émile', 'abc\n', 'bob/'] as const) t.notOk(isValidUsername(bad), JSON.stringify(bad))
})

t.test('the API schema for a name accepts exactly what isValidUsername accepts', async t => {
  const validate = new Ajv().compile(Username)
  const names = fc.oneof(fc.string({ maxLength: 40 }), fc.stringMatching(/^[A-Za-z0-9_.\- $é]{0,40}$/))
  fc.assert(fc.property(names, name => validate(name) === isValidUsername(name)), { numRuns: 5_000 })
})

t.test('requireUser finds a user in any case, or throws the 404 naming the name as written', async t => {
  const app = await build(t)
  await register(app, 'Alice')
  t.match(await requireUser(app.db, 'aLICE'), { username: 'Alice' })
  await t.rejects(requireUser(app.db, 'Nobody'), { statusCode: 404, code: 'USER_NOT_FOUND', message: "User 'Nobody' not found." })
})
