import { setTimeout as sleep } from 'node:timers/promises'
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { befriend, build, call, isError, register, snapshot, user } from '../helper.js'

// RATE_LIMIT_LOOKUPS: get_key and get_messages tell whether a name exists (404
// USER_NOT_FOUND or not), so each account may look up only so many different names that are
// not its contacts per window. Contacts and oneself are free, as is a name looked up again.

t.test('lookups of names that are not contacts: counted once per name, 429 alike for real and unknown names, freed after the window', async t => {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_LOOKUPS: '2/3s' })
  const alice = { name: 'alice', token: await user(app, 'alice') }
  await befriend(app, alice, { name: 'bob', token: await user(app, 'bob') })
  for (const name of ['carol', 'dave']) await register(app, name)
  const key = async (name: string): Promise<LightMyRequestResponse> => await call(app, alice.token, { method: 'GET', url: '/get_key', query: { username: name } })
  const messages = async (name: string): Promise<LightMyRequestResponse> => await call(app, alice.token, { method: 'GET', url: '/get_messages', query: { username: name } })

  for (let i = 0; i < 5; i++) {
    t.equal((await messages('bob')).statusCode, 200, 'a contact: never counted')
    isError(t, await key('alice'), 404, 'KEY_NOT_FOUND')
  }
  isError(t, await key('carol'), 404, 'KEY_NOT_FOUND')
  for (let i = 0; i < 5; i++) t.equal((await messages('CAROL')).statusCode, 200, 'carol again (any case, either route): counted once')
  isError(t, await messages('nobody1'), 404, 'USER_NOT_FOUND')
  const before = await snapshot(app)
  const real = await key('dave')
  const unknown = await messages('nobody2')
  for (const res of [real, unknown]) {
    isError(t, res, 429, 'RATE_LIMITED')
    t.match(res.json().message, /^Too many lookups of users who are not your contacts for this account; retry in \d+ seconds\.$/)
    t.ok(Number(res.headers['retry-after']) > 0)
  }
  t.same(await snapshot(app), before)
  t.equal((await messages('carol')).statusCode, 200, 'a name already looked up stays free')
  t.equal((await messages('bob')).statusCode, 200, 'contacts stay free')
  const other = await user(app, 'erin')
  isError(t, await call(app, other, { method: 'GET', url: '/get_key', query: { username: 'dave' } }), 404, 'KEY_NOT_FOUND') // another account: its own budget
  await sleep(3100)
  isError(t, await key('dave'), 404, 'KEY_NOT_FOUND')
})
