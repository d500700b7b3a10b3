import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { bearer as bearerSchema } from '../routes/schemas.js'
import { ADMIN_TOKEN, PASSWORD, befriend, build, buildListingRoutes, call, fillParams, isError, login, snapshot, user } from './helper.js'
import { deviceLogin, newIdentity, publishKeys, uploadBody } from './fixtures/prekeys.js'

// Every protected endpoint against every kind of caller who should not get at alice:
// three live users with no right to her (a stranger, someone whose request she has not
// answered, someone she blocked) and three dead tokens (a deleted user's, a logged-out
// one, one from before a password change). Alice is the target of every request. The
// admin API is in it too: no user's token opens it, and the admin token opens no user route.
// A route counts as protected by what it does with a request without a token (see
// buildListingRoutes), and its OpenAPI annotation must say the same.

type Live = 'stranger' | 'pending' | 'blocked'
type Expect = number | [number, string] | ((res: LightMyRequestResponse, t: Test) => void)

interface Cell {
  request: InjectOptions
  /** what each live caller gets; a refusal also leaves the database as it was */
  live: Record<Live, Expect>
  /** callers whose request alice may notice (a stranger's chat request, a caller's own block); for anyone else her view stays the same */
  aliceSees?: Live[]
}

// the identity of every caller in the matrix (each test has a database of its own)
const CALLER = newIdentity()
const everyone = (expect: Expect): Record<Live, Expect> => ({ stranger: expect, pending: expect, blocked: expect })
// the caller's own event stream: for the blocked caller, the acceptance from before the block and the contact_removed
// that ended it, as remove_contact would have (a block is never revealed)
const ownStream = (types: string[]) => (res: LightMyRequestResponse, t: Test): void => {
  t.equal(res.statusCode, 200)
  t.same(res.json().events.map((event: { type: string }) => event.type), types, 'sync shows the caller only its own events')
  t.notOk(res.body.includes('ALICE-TO-BOB'), 'never a message of someone else\'s conversation')
}
const only = (name: string) => (res: LightMyRequestResponse, t: Test): void => {
  t.equal(res.statusCode, 200)
  t.notMatch(res.body, /alice/i, `${name} never shows alice to them`)
}

// Read-only requests first, then those that change the caller's own state.
const matrix: Record<string, Cell> = {
  'GET /get_key': { request: { method: 'GET', url: '/get_key?username=alice' }, live: everyone(200) },
  'GET /get_chat_requests': { request: { method: 'GET', url: '/get_chat_requests' }, live: everyone(only('get_chat_requests')) },
  'GET /get_contacts': { request: { method: 'GET', url: '/get_contacts' }, live: everyone(only('get_contacts')) },
  'GET /get_blocked': { request: { method: 'GET', url: '/get_blocked' }, live: everyone(only('get_blocked')) },
  'GET /get_messages': {
    request: { method: 'GET', url: '/get_messages?username=alice' },
    live: everyone((res, t) => {
      t.equal(res.statusCode, 200)
      t.notOk(res.body.includes('ALICE-TO-BOB'), 'never a message of someone else\'s conversation')
    })
  },
  'GET /v1/devices': { request: { method: 'GET', url: '/v1/devices' }, live: everyone(only('GET /v1/devices')) },
  // alice has a device 2; no caller has one
  'DELETE /v1/devices/:deviceId': { request: { method: 'DELETE', url: '/v1/devices/2' }, live: everyone([404, 'DEVICE_NOT_FOUND']) },
  'GET /sync': { request: { method: 'GET', url: '/sync' }, live: { stranger: ownStream([]), pending: ownStream([]), blocked: ownStream(['chat_accepted', 'contact_removed']) } },
  // message 1 is alice's to bob: no caller received it
  'POST /ack_messages': { request: { method: 'POST', url: '/ack_messages', payload: { up_to_id: 1 } }, live: everyone([404, 'MESSAGE_NOT_FOUND']) },
  // alice's device 1 has a bundle: nobody but a contact claims a key of it (a block is answered as a stranger is)
  'GET /v1/keys/:username/:deviceId': { request: { method: 'GET', url: '/v1/keys/alice/*' }, live: everyone([403, 'NOT_A_CONTACT']) },
  'GET /v1/keys': {
    request: { method: 'GET', url: '/v1/keys' },
    live: everyone((res, t) => {
      t.equal(res.statusCode, 200)
      t.same(res.json(), { count: 0, pqCount: 0 }, 'the caller\'s own device, never alice\'s')
    })
  },
  'POST /send_message': { request: { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 's', recipient_blob: 'r' } }, live: everyone([403, 'NOT_A_CONTACT']) },
  'PUT /v1/messages/:username': {
    request: { method: 'PUT', url: '/v1/messages/alice', payload: { messages: [{ type: 1, destinationDeviceId: 2, destinationRegistrationId: 77, content: 'AAAA' }] } },
    live: everyone([403, 'NOT_A_CONTACT'])
  },
  'POST /accept_chat': { request: { method: 'POST', url: '/accept_chat', payload: { requester_username: 'alice' } }, live: everyone([404, 'NO_PENDING_REQUEST']) },
  'POST /decline_chat': { request: { method: 'POST', url: '/decline_chat', payload: { requester_username: 'alice' } }, live: everyone([404, 'NO_PENDING_REQUEST']) },
  'POST /remove_contact': { request: { method: 'POST', url: '/remove_contact', payload: { username: 'alice' } }, live: everyone([404, 'NOT_YOUR_CONTACT']) },
  'POST /unblock_user': { request: { method: 'POST', url: '/unblock_user', payload: { username: 'alice' } }, live: everyone([404, 'NOT_BLOCKED']) },
  'POST /change_password': { request: { method: 'POST', url: '/change_password', payload: { old_password: 'not the password', new_password: 'whatever it is' } }, live: everyone([403, 'WRONG_PASSWORD']) },
  'POST /delete_account': { request: { method: 'POST', url: '/delete_account', payload: { password: 'not the password' } }, live: everyone([403, 'WRONG_PASSWORD']) },
  // a blocked user is answered exactly as a stranger: 201, and alice never sees it
  'POST /request_chat': { request: { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } }, live: { stranger: 201, pending: [409, 'ALREADY_REQUESTED'], blocked: 201 }, aliceSees: ['stranger'] },
  // each caller withdraws the request just made (pending: the one from before); the blocked caller's was never shown to alice
  'POST /cancel_request': { request: { method: 'POST', url: '/cancel_request', payload: { recipient_username: 'alice' } }, live: everyone(200), aliceSees: ['stranger', 'pending'] },
  'POST /upload_key': { request: { method: 'POST', url: '/upload_key', payload: { public_key: 'my own key' } }, live: everyone(200) },
  // the caller's own identity key, then its own device's keys under it
  'PUT /v1/keys/identity': { request: { method: 'PUT', url: '/v1/keys/identity', payload: { identityKey: CALLER.key } }, live: everyone(200) },
  'PUT /v1/keys': { request: { method: 'PUT', url: '/v1/keys', payload: uploadBody(CALLER, { ec: 1, pq: 1 }) }, live: everyone(200) },
  'POST /block_user': { request: { method: 'POST', url: '/block_user', payload: { username: 'alice' } }, live: everyone(200), aliceSees: ['stranger', 'pending'] },
  'POST /logout': { request: { method: 'POST', url: '/logout' }, live: everyone(200) },
  // a plain HTTP request past the token check: the socket itself is tested in test/realtime
  'GET /ws': { request: { method: 'GET', url: '/ws' }, live: everyone([426, 'UPGRADE_REQUIRED']) },
  // the admin API, aimed at alice: a user's token, whoever's, is no admin token
  ...Object.fromEntries(([
    ['GET', '/admin/api/stats', '/admin/api/stats'],
    ['GET', '/admin/api/users', '/admin/api/users?search=alice'],
    ['GET', '/admin/api/users/:username', '/admin/api/users/alice'],
    ['POST', '/admin/api/users/:username/disable', '/admin/api/users/alice/disable'],
    ['POST', '/admin/api/users/:username/enable', '/admin/api/users/alice/enable'],
    ['DELETE', '/admin/api/users/:username', '/admin/api/users/alice'],
    ['GET', '/admin/api/requests', '/admin/api/requests?user=alice&status=all'],
    ['GET', '/admin/api/messages', '/admin/api/messages?user=alice'],
    ['GET', '/admin/api/audit', '/admin/api/audit']
  ] as const).map(([method, route, url]): [string, Cell] => [`${method} ${route}`, { request: { method, url }, live: everyone([401, 'ADMIN_UNAUTHORIZED']) }]))
}

/** The database but the audit log, where each wrong admin token is written down (test/admin/audit.test.ts). */
async function snapshotButAudit (app: FastifyInstance): Promise<Record<string, string>> {
  const { admin_audit: _audit, ...rest } = await snapshot(app)
  return rest
}

async function failedAdminTokens (app: FastifyInstance): Promise<number> {
  return (await app.db.selectFrom('admin_audit').select('id').where('action', '=', 'admin-token-failed').execute()).length
}

/** Alice with a key, a contact (bob) and a conversation; the caller `name` in its relation to her. */
async function scene (app: FastifyInstance, name: string): Promise<{ alice: string, caller: string }> {
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: PASSWORD, device: { registrationId: 77 } } })
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'ALICE-KEY' } })
  await call(app, alice.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'bob', sender_blob: 'ALICE-TO-BOB', recipient_blob: 'ALICE-TO-BOB' } })
  // device 1 registered (its earlier tokens end) and a bundle published
  alice.token = await deviceLogin(app, 'alice', { id: 1, registrationId: 11 })
  await publishKeys(app, alice.token)
  const caller = { name, token: await user(app, name) }
  if (name === 'pending') await call(app, caller.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  if (name === 'blocked') {
    await befriend(app, caller, alice)
    await call(app, alice.token, { method: 'POST', url: '/block_user', payload: { username: name } })
  }
  return { alice: alice.token, caller: caller.token }
}

t.test('every protected route is in the matrix', async t => {
  const { routes } = await buildListingRoutes(t)
  const listed = routes.filter(route => route.guard !== 'none').map(route => `${route.method} ${route.url}`).sort()
  t.same(listed, Object.keys(matrix).sort(), 'a new protected route needs its row here')
  t.ok(routes.filter(route => route.guard === 'none').every(route => !/^\/(get_|send_|accept_|decline_|cancel_|block_|unblock_|remove_|upload_|change_|delete_|logout|admin|ws|sync)/.test(route.url)),
    'no route that acts on an account is left unprotected')
  t.ok(routes.filter(route => route.url.startsWith('/admin/')).every(route => route.guard === 'admin'), 'every admin route wants the admin token')
})

t.test('what each route does without a token agrees with its OpenAPI security annotation', async t => {
  const { routes } = await buildListingRoutes(t)
  for (const route of routes.filter(route => route.documented !== undefined)) {
    t.equal(route.guard, route.documented, `${route.method} ${route.url}: guarded as ${route.guard}, documented as ${route.documented}`)
  }
  t.same(routes.filter(route => route.documented === undefined).map(route => `${route.method} ${route.url}`), ['GET /ws'],
    'only the WebSocket is outside the document (its protocol is described under GET /sync)')
})

t.test('a route annotated but not guarded, or guarded but not annotated, is caught', async t => {
  const { routes } = await buildListingRoutes(t, {}, async app => {
    app.post('/annotated_only', { schema: { security: bearerSchema } }, async () => ({ ok: true }))
    app.post('/guarded_only', { onRequest: app.authenticate }, async () => ({ ok: true }))
  })
  t.match(routes.find(route => route.url === '/annotated_only'), { guard: 'none', documented: 'user' })
  t.match(routes.find(route => route.url === '/guarded_only'), { guard: 'user', documented: 'none' })
})

t.test('the admin token opens the admin API and no user route; no user token opens the admin API', async t => {
  const { app, routes } = await buildListingRoutes(t)
  const { caller } = await scene(app, 'stranger')
  for (const route of routes.filter(route => route.guard !== 'none')) {
    const cell = matrix[`${route.method} ${route.url}`]
    if (cell === undefined) continue // the matrix test above names it
    const before = await snapshot(app)
    const res = await call(app, ADMIN_TOKEN, cell.request)
    if (route.guard === 'admin') {
      // past the guard (alice may be gone by then: a 404 is the route's own answer)
      t.ok(res.statusCode !== 401 && res.statusCode < 500, `${route.method} ${route.url} with the admin token: ${res.statusCode} ${res.body.slice(0, 120)}`)
      isError(t, await call(app, caller, cell.request), 401, 'ADMIN_UNAUTHORIZED')
    } else {
      isError(t, res, 401)
      t.not(res.json().code, 'ADMIN_UNAUTHORIZED', `${route.method} ${route.url} wants a user's token`)
      t.same(await snapshot(app), before, `${route.method} ${route.url}: the refusal wrote nothing`)
    }
  }
})

for (const who of ['stranger', 'pending', 'blocked'] as const) {
  t.test(`a ${who} gets the right answer from every protected route, and alice's side never changes`, async t => {
    const { app } = await buildListingRoutes(t)
    const { alice } = await scene(app, who)
    const aliceView = async (): Promise<unknown[]> => await Promise.all(['/get_key?username=alice', '/get_contacts', '/get_chat_requests', '/get_messages?username=bob', '/get_blocked']
      .map(async url => (await call(app, alice, { method: 'GET', url })).json()))
    let seenByAlice = await aliceView()
    for (const [route, cell] of Object.entries(matrix)) {
      const token = await login(app, who) // fresh each time: logout and password checks must not leak into the next row
      const before = await snapshotButAudit(app)
      const failedBefore = await failedAdminTokens(app)
      const res = await call(app, token, cell.request)
      const expect = cell.live[who]
      if (typeof expect === 'function') expect(res, t)
      else if (typeof expect === 'number') t.equal(res.statusCode, expect, `${route}: ${res.body.slice(0, 120)}`)
      else {
        isError(t, res, expect[0], expect[1])
        t.same(await snapshotButAudit(app), before, `${route}: a refusal writes nothing`)
        t.equal(await failedAdminTokens(app), failedBefore + (expect[1] === 'ADMIN_UNAUTHORIZED' ? 1 : 0), `${route}: but the audit row of a wrong admin token`)
      }
      const seenNow = await aliceView()
      if (cell.aliceSees?.includes(who) !== true) t.same(seenNow, seenByAlice, `${route}: alice sees nothing of it`)
      seenByAlice = seenNow
    }
  })
}

t.test('dead tokens get a 401 from every protected route (including routes added later) and write nothing', async t => {
  const { app, routes } = await buildListingRoutes(t)
  await scene(app, 'stranger')
  const deleted = await user(app, 'erin')
  await call(app, deleted, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })
  const loggedOut = await user(app, 'frank')
  await call(app, loggedOut, { method: 'POST', url: '/logout' })
  const stale = await user(app, 'grace')
  const staleTwin = await login(app, 'grace')
  await call(app, staleTwin, { method: 'POST', url: '/change_password', payload: { old_password: PASSWORD, new_password: 'a new password' } })
  const dead: Array<[string, string, string]> = [['deleted user', deleted, 'ACCOUNT_GONE'], ['logged out', loggedOut, 'TOKEN_REVOKED'], ['before password change', stale, 'TOKEN_REVOKED']]
  const before = await snapshotButAudit(app)
  const failedBefore = await failedAdminTokens(app)
  const protectedRoutes = routes.filter(route => route.guard !== 'none')
  t.ok(protectedRoutes.length >= Object.keys(matrix).length)
  for (const route of protectedRoutes) {
    const cell = matrix[`${route.method} ${route.url}`]
    const request: InjectOptions = cell?.request ?? { method: route.method as InjectOptions['method'], url: fillParams(route.url), ...(route.method === 'GET' ? {} : { payload: {} }) }
    for (const [label, token, code] of dead) {
      const res = await call(app, token, request)
      t.comment(`${label} -> ${route.method} ${route.url}`)
      isError(t, res, 401, route.guard === 'admin' ? 'ADMIN_UNAUTHORIZED' : code)
    }
  }
  t.same(await snapshotButAudit(app), before)
  t.equal(await failedAdminTokens(app), failedBefore + 3 * protectedRoutes.filter(route => route.guard === 'admin').length, 'each try at the admin API is audited')
})

t.test('out of lookups, a stranger, a pending and a blocked caller get the same 429 for alice as for a name nobody holds', async t => {
  const answers: Record<string, string[]> = {}
  for (const who of ['stranger', 'pending', 'blocked'] as const) {
    const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_LOOKUPS: '1/hour' })
    const { caller } = await scene(app, who)
    t.equal((await call(app, caller, { method: 'GET', url: '/get_key?username=nobody' })).statusCode, 404, `${who}: the one lookup of the window`)
    answers[who] = []
    for (const url of ['/get_key?username=alice', '/get_messages?username=alice', '/get_key?username=nobody2', '/get_messages?username=nobody3']) {
      const before = await snapshot(app)
      const res = await call(app, caller, { method: 'GET', url })
      isError(t, res, 429, 'RATE_LIMITED')
      t.same(await snapshot(app), before, `${who} ${url}: a refusal writes nothing`)
      answers[who]?.push(JSON.stringify({ ...res.json(), message: res.json().message.replace(/\d+ seconds/, 'N seconds') }))
    }
    t.equal(new Set(answers[who]).size, 1, `${who}: alice and unknown names are answered alike`)
  }
  t.same(answers.blocked, answers.stranger, 'a blocked caller is answered as a stranger')
  t.same(answers.pending, answers.stranger)
})
