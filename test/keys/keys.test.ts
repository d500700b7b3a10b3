import t from 'tap'
import { build, call, isError, rowCounts, snapshot, user } from '../helper.js'

t.test('upload_key stores, replaces, and get_key returns the key by case-insensitive name', async t => {
  const app = await build(t)
  const alice = await user(app, 'Alice')
  const bob = await user(app, 'bob')
  isError(t, await call(app, bob, { method: 'GET', url: '/get_key?username=alice' }), 404, 'KEY_NOT_FOUND')
  let res = await call(app, alice, { method: 'POST', url: '/upload_key', payload: { public_key: 'KEY-ONE' } })
  t.equal(res.statusCode, 200)
  t.type(res.json().message, 'string')
  res = await call(app, bob, { method: 'GET', url: '/get_key?username=alice' })
  t.same(res.json(), { username: 'Alice', public_key: 'KEY-ONE' })
  await call(app, alice, { method: 'POST', url: '/upload_key', payload: { public_key: 'KEY-TWO' } })
  res = await call(app, bob, { method: 'GET', url: '/get_key?username=ALICE' })
  t.same(res.json(), { username: 'Alice', public_key: 'KEY-TWO' })
  t.equal((await rowCounts(app)).public_keys, 1, 'replaced, not added')
})

t.test('get_key of an unknown user is a 404, of a bad name a 400, without a name a 400', async t => {
  const app = await build(t)
  const bob = await user(app, 'bob')
  isError(t, await call(app, bob, { method: 'GET', url: '/get_key?username=nobody' }), 404, 'USER_NOT_FOUND')
  for (const url of ['/get_key', '/get_key?username=', '/get_key?username=a', '/get_key?username=%00%01', '/get_key?username=x%20y', `/get_key?username=${'a'.repeat(40)}`]) {
    const res = await call(app, bob, { method: 'GET', url })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /username/)
  }
})

t.test('upload_key refuses keys that are missing, empty, not strings or over MAX_KEY_LENGTH', async t => {
  const app = await build(t, { MAX_KEY_LENGTH: '100' })
  const alice = await user(app, 'alice')
  const before = await snapshot(app)
  for (const payload of [{}, { public_key: '' }, { public_key: true }, { public_key: 123 }, { public_key: null }, { public_key: ['k'] }, { public_key: { k: 1 } }, { public_key: 'k'.repeat(101) }, { key: 'k' }]) {
    const res = await call(app, alice, { method: 'POST', url: '/upload_key', payload })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, /public_key/, JSON.stringify(payload).slice(0, 40))
  }
  t.same(await snapshot(app), before)
  t.equal((await call(app, alice, { method: 'POST', url: '/upload_key', payload: { public_key: 'k'.repeat(100) } })).statusCode, 200, 'exactly the limit is fine')
})

t.test('a body over BODY_LIMIT is a 413 and stores nothing', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const res = await call(app, alice, { method: 'POST', url: '/upload_key', payload: { public_key: 'k'.repeat(300 * 1024) } })
  isError(t, res, 413, 'PAYLOAD_TOO_LARGE')
  t.equal((await rowCounts(app)).public_keys, 0)
})
