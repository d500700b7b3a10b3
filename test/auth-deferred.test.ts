import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { revokeToken } from '../db/sessions.js'
import { eraseUser } from '../db/users.js'
import { befriend, build, call, isError, login, snapshot, user } from './helper.js'

// The read-only routes, and send_message and PUT /v1/messages for their recipient, start their reads before the
// token's session is checked (authenticateDeferred, plugins/app/auth.ts): whatever those reads
// find, and whatever the request asks, a token that no longer works gets the same 401 as on
// every other route, learns nothing, spends nothing of the account's limits and changes nothing.

const READS = [
  { url: '/get_key?username=bob', answers: 200 },
  { url: '/get_key?username=nobody', answers: 404 },
  { url: '/get_key?username=', answers: 400 },
  { url: '/get_contacts', answers: 200 },
  { url: '/get_chat_requests', answers: 200 },
  { url: '/get_blocked', answers: 200 },
  { url: '/get_messages?username=bob', answers: 200 },
  { url: '/get_messages?username=nobody', answers: 404 },
  { url: '/get_messages?username=bob&limit=0', answers: 400 },
  { url: '/sync?timeout=0', answers: 200 },
  { url: '/sync?timeout=0&since=garbage', answers: 400 },
  { url: '/sync?timeout=0&since=999999-1', answers: 410 },
  { url: '/sync?timeout=5', answers: 200 }
]

const message = { sender_blob: 's', recipient_blob: 'r' }
const SENDS = [
  { payload: { recipient_username: 'bob', ...message }, answers: 201 },
  { payload: { recipient_username: 'nobody', ...message }, answers: 404 },
  { payload: { recipient_username: 'carol', ...message }, answers: 403 },
  { payload: { recipient_username: 'bob', sender_blob: 's' }, answers: 400 },
  { payload: { recipient_username: 'bob', ...message, client_msg_id: 'not an id!' }, answers: 400 },
  { payload: 'recipient_username=bob', answers: 415, headers: { 'content-type': 'application/x-www-form-urlencoded' } }
]

const envelope = { type: 1, destinationDeviceId: 1, destinationRegistrationId: 7, content: 'AAAA' }
// PUT /v1/messages/{username}; none of these users' devices registered, so a good list is a 409
const ENVELOPES = [
  { url: '/v1/messages/bob', payload: { messages: [envelope] }, answers: 409 },
  { url: '/v1/messages/alice', payload: { messages: [envelope] }, answers: 409 },
  { url: '/v1/messages/nobody', payload: { messages: [envelope] }, answers: 404 },
  { url: '/v1/messages/carol', payload: { messages: [envelope] }, answers: 403 },
  { url: '/v1/messages/bob', payload: { messages: [{ ...envelope, content: 'AA' }] }, answers: 400 },
  { url: '/v1/messages/bob', payload: { messages: [envelope, envelope] }, answers: 400 }
]

function claims (token: string): { user_id: number, jti: string, exp: number, dk: number } {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
}

async function alice (t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, token: string }> {
  const app = await build(t, env)
  const token = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await user(app, 'carol')
  await befriend(app, { name: 'alice', token }, { name: 'bob', token: bob })
  await call(app, bob, { method: 'POST', url: '/upload_key', payload: { public_key: 'bob key' } })
  await call(app, bob, { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 's', recipient_blob: 'r' } })
  return { app, token }
}

const ENDINGS: Array<{ name: string, code: string, end: (app: FastifyInstance, token: string) => Promise<string> }> = [
  {
    name: 'revoked by logout',
    code: 'TOKEN_REVOKED',
    end: async (app, token) => { await call(app, token, { method: 'POST', url: '/logout' }); return token }
  },
  {
    name: 'an old token_version',
    code: 'TOKEN_REVOKED',
    end: async (app, token) => { await app.db.updateTable('users').set(eb => ({ token_version: eb('token_version', '+', 1) })).where('username', '=', 'alice').execute(); return token }
  },
  {
    name: 'a disabled account',
    code: 'ACCOUNT_DISABLED',
    end: async (app, token) => { await app.db.updateTable('users').set({ disabled_at: Date.now() }).where('username', '=', 'alice').execute(); return token }
  },
  {
    name: 'an account gone',
    code: 'ACCOUNT_GONE',
    end: async (app, token) => {
      if (!await eraseUser(app.db, claims(token).user_id)) throw new Error('alice was not erased')
      return token
    }
  },
  {
    name: 'a removed device',
    code: 'DEVICE_REMOVED',
    // signed by the server for the account's device 2, whose key no device has (any longer)
    end: async (app, token) => app.jwt.sign({ ...claims(token), iat: undefined, exp: undefined, device_id: 2, dk: 987654 } as never)
  }
]

for (const ending of ENDINGS) {
  t.test(`a token of ${ending.name}: every read and send answers ${ending.code} whatever it asks, and nothing changes`, async t => {
    const { app, token } = await alice(t)
    for (const read of READS) {
      const res = await call(app, token, { method: 'GET', url: read.url })
      t.equal(res.statusCode, read.answers, `${read.url}: ${read.answers} while the token works`)
    }
    const send = (token: string, { payload, headers }: typeof SENDS[number]): ReturnType<typeof call> =>
      call(app, token, { method: 'POST', url: '/send_message', payload, ...(headers === undefined ? {} : { headers }) })
    for (const sent of SENDS) {
      const res = await send(token, sent)
      t.equal(res.statusCode, sent.answers, `send_message ${JSON.stringify(sent.payload)}: ${sent.answers} while the token works`, { body: res.body })
    }
    for (const sent of ENVELOPES) {
      const res = await call(app, token, { method: 'PUT', url: sent.url, payload: sent.payload })
      t.equal(res.statusCode, sent.answers, `PUT ${sent.url} ${JSON.stringify(sent.payload)}: ${sent.answers} while the token works`, { body: res.body })
    }
    const ended = await ending.end(app, token)
    const before = await snapshot(app)
    for (const read of READS) isError(t, await call(app, ended, { method: 'GET', url: read.url }), 401, ending.code)
    for (const sent of SENDS) isError(t, await send(ended, sent), 401, ending.code)
    for (const sent of ENVELOPES) isError(t, await call(app, ended, { method: 'PUT', url: sent.url, payload: sent.payload }), 401, ending.code)
    t.same(await snapshot(app), before, 'nothing changed')
  })
}

t.test('lookups made with a token that no longer works do not count against the account', async t => {
  const { app, token } = await alice(t, { RATE_LIMIT: 'on', RATE_LIMIT_LOOKUPS: '1/60s' })
  const { user_id: id, jti, exp } = claims(token)
  await revokeToken(app.db, jti, id, exp * 1000)
  for (const name of ['nobody1', 'nobody2', 'nobody3']) {
    isError(t, await call(app, token, { method: 'GET', url: `/get_key?username=${name}` }), 401, 'TOKEN_REVOKED')
    isError(t, await call(app, token, { method: 'GET', url: `/get_messages?username=${name}` }), 401, 'TOKEN_REVOKED')
  }
  const fresh = await login(app, 'alice')
  isError(t, await call(app, fresh, { method: 'GET', url: '/get_key?username=nobody4' }), 404, 'USER_NOT_FOUND')
  isError(t, await call(app, fresh, { method: 'GET', url: '/get_key?username=nobody5' }), 429, 'RATE_LIMITED')
})

t.test('sends made with a token that no longer works do not count against the account', async t => {
  const { app, token } = await alice(t, { RATE_LIMIT: 'on', RATE_LIMIT_SEND_MESSAGE_SENDER: '1/60s' })
  const { user_id: id, jti, exp } = claims(token)
  await revokeToken(app.db, jti, id, exp * 1000)
  const before = await snapshot(app)
  for (const recipient of ['bob', 'carol', 'nobody']) {
    isError(t, await call(app, token, { method: 'POST', url: '/send_message', payload: { recipient_username: recipient, ...message } }), 401, 'TOKEN_REVOKED')
    isError(t, await call(app, token, { method: 'PUT', url: `/v1/messages/${recipient}`, payload: { messages: [envelope] } }), 401, 'TOKEN_REVOKED')
  }
  t.same(await snapshot(app), before, 'nothing stored')
  const fresh = await login(app, 'alice')
  t.equal((await call(app, fresh, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', ...message } })).statusCode, 201, 'the first send of the account')
  isError(t, await call(app, fresh, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', ...message } }), 429, 'RATE_LIMITED')
})

t.test('a long-poll with a token that stops working while it waits ends in its 401', async t => {
  const { app, token } = await alice(t)
  const { next } = (await call(app, token, { method: 'GET', url: '/sync?timeout=0' })).json()
  const polled = call(app, token, { method: 'GET', url: `/sync?timeout=10&since=${next as string}` })
  await new Promise(resolve => setTimeout(resolve, 200))
  const other = await login(app, 'alice')
  t.equal((await call(app, other, { method: 'POST', url: '/logout' })).statusCode, 200, 'another session ends: the poll goes on')
  await call(app, token, { method: 'POST', url: '/logout' })
  isError(t, await polled, 401, 'TOKEN_REVOKED')
})
