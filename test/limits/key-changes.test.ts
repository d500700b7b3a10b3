import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { befriend, build, call, isError, snapshot, user } from '../helper.js'
import { sync } from '../realtime-helper.js'

// RATE_LIMIT_UPLOAD_KEY: each different key sends key_changed to every contact, so changes
// are counted per account; a first key and the same key again are no change and never refused.

t.test('key changes: per account, 429 past the limit with nothing sent, the same key still accepted, freed after the window', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_UPLOAD_KEY: '2/3s' })
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  const upload = async (token: string, key: string) => await call(app, token, { method: 'POST', url: '/upload_key', payload: { public_key: key } })
  t.equal((await upload(alice.token, 'key-0')).statusCode, 200, 'a first key is not a change')
  t.equal((await upload(alice.token, 'key-1')).statusCode, 200)
  t.equal((await upload(alice.token, 'key-1')).statusCode, 200, 'the same key again is not a change')
  t.equal((await upload(alice.token, 'key-2')).statusCode, 200)
  const before = await snapshot(app)
  const refused = await upload(alice.token, 'key-3')
  isError(t, refused, 429, 'RATE_LIMITED')
  t.match(refused.json().message, /^Too many key changes for this account; retry in \d+ seconds\.$/)
  t.ok(Number(refused.headers['retry-after']) > 0, 'retry-after in seconds')
  t.same(await snapshot(app), before, 'no key stored, no event sent')
  const same = await upload(alice.token, 'key-2')
  t.equal(same.statusCode, 200, 'out of changes, the stored key again is accepted (it changes nothing)')
  t.equal(same.headers['retry-after'], undefined)
  t.same(await snapshot(app), before)
  t.equal((await upload(bob.token, 'bob-1')).statusCode, 200, 'another account has its own budget')
  t.equal((await upload(bob.token, 'bob-2')).statusCode, 200)
  const changed = (await sync(t, app, bob.token)).events.filter(event => event.type === 'key_changed')
  t.equal(changed.length, 2, 'bob was told of two changes, not of the refused one')
  await sleep(3100)
  t.equal((await upload(alice.token, 'key-3')).statusCode, 200, 'after the window a change is allowed again')
})
