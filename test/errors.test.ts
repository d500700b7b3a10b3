import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fp from 'fastify-plugin'
import t, { type Test } from 'tap'
import { app as appPlugin, serverOptions } from '../app.js'
import { EnvSchema } from '../config.js'
import { catalogue } from '../errors.js'
import type { WireFrame } from '../routes/realtime/events.js'
import { PASSWORD, bearer, befriend, build, call, isError, login, testConfig, user } from './helper.js'
import { Client, listen, send, sync } from './realtime-helper.js'
import { newIdentity, signedEcKey, uploadBody } from './fixtures/prekeys.js'

// The error catalogue (errors.ts) against the running API: every code the OpenAPI document
// names is in it, and every code in it is one a real request can get.

const ADMIN_TOKEN = randomBytes(32).toString('base64url')
const admin = bearer(ADMIN_TOKEN)
const DAY = 86_400_000
const CODES = new Set(catalogue.map(entry => entry.code))

/** The app most rows share: the admin API on, messages kept a day (so that a cursor can expire). */
interface Shared { app: FastifyInstance, base: string }

/** What a row's request got: an HTTP answer, or the error frame and close of a WebSocket. */
type Outcome = LightMyRequestResponse | { frame: WireFrame | undefined, closed: { code: number, reason: string } }

let people = 0
/** A registered, logged-in user of a name no other row uses. */
async function someone (app: FastifyInstance): Promise<{ name: string, token: string }> {
  const name = `user${++people}`
  return { name, token: await user(app, name) }
}

type Person = Awaited<ReturnType<typeof someone>>

async function strangers (app: FastifyInstance): Promise<[Person, Person]> {
  return [await someone(app), await someone(app)]
}

async function friends (app: FastifyInstance): Promise<[Person, Person]> {
  const [a, b] = await strangers(app)
  await befriend(app, a, b)
  return [a, b]
}

/** A token of the user's, signed by the server, that expired a minute ago. */
function expiredToken (app: FastifyInstance, token: string): string {
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
  return app.jwt.sign({ ...payload, iat: undefined, exp: undefined }, { expiresIn: '1s', clockTimestamp: Date.now() - 60_000 } as never)
}

/** The app alone, with one route that fails as a bug would. */
async function appWithFaultyRoute (t: Test): Promise<FastifyInstance> {
  const config = await testConfig(t)
  const app = Fastify(serverOptions(config))
  await app.register(fp(appPlugin), { config })
  app.get('/faulty', async () => { throw new Error('a bug') })
  await app.ready()
  t.teardown(async () => { await app.close() })
  return app
}

const post = (url: string, payload: object): { method: 'POST', url: string, payload: object } => ({ method: 'POST', url, payload })

/** The first person posts the second's name, as `field`, to the URL. */
async function names (app: FastifyInstance, [me, other]: [Person, Person], url: string, field: string): Promise<LightMyRequestResponse> {
  return await call(app, me.token, post(url, { [field]: other.name }))
}

// One real request per code. A code added to the catalogue without a row here fails the test.
const REACH: Record<string, (shared: Shared, t: Test) => Promise<Outcome>> = {
  MISSING_TOKEN: async ({ app }) => await app.inject({ url: '/get_contacts' }),
  MALFORMED_AUTHORIZATION: async ({ app }) => await app.inject({ url: '/get_contacts', headers: { authorization: 'Basic YWxpY2U6cHc=' } }),
  INVALID_TOKEN: async ({ app }) => await call(app, 'aaa.bbb.ccc', { url: '/get_contacts' }),
  TOKEN_EXPIRED: async ({ app }) => await call(app, expiredToken(app, (await someone(app)).token), { url: '/get_contacts' }),
  ACCOUNT_GONE: async ({ app }) => {
    const gone = await someone(app)
    const kept = await login(app, gone.name)
    await call(app, gone.token, post('/delete_account', { password: PASSWORD }))
    return await call(app, kept, { url: '/get_contacts' })
  },
  TOKEN_REVOKED: async ({ app }) => {
    const { token } = await someone(app)
    await call(app, token, post('/logout', {}))
    return await call(app, token, { url: '/get_contacts' })
  },
  ACCOUNT_DISABLED: async ({ app }) => {
    const { name, token } = await someone(app)
    await app.inject({ ...post(`/admin/api/users/${name}/disable`, {}), headers: admin })
    return await call(app, token, { url: '/get_contacts' })
  },
  INVALID_CREDENTIALS: async ({ app }) => await app.inject(post('/login', { username: (await someone(app)).name, password: 'not the password' })),
  SESSION_ENDED: async ({ app, base }) => {
    const { token } = await someone(app)
    const socket = await Client.open(base, token)
    await socket.until('ready')
    await call(app, token, post('/logout', {}))
    return { frame: await socket.next(), closed: await socket.closed }
  },
  DEVICE_REMOVED: async ({ app }) => {
    const { name, token } = await someone(app)
    const added = (await app.inject(post('/login', { username: name, password: PASSWORD, device: { registrationId: 9 } }))).json()
    await call(app, token, { method: 'DELETE', url: `/v1/devices/${added.device_id as number}` })
    return await call(app, added.token, { url: '/get_contacts' })
  },
  DEVICE_NOT_FOUND: async ({ app }) => await call(app, (await someone(app)).token, { method: 'DELETE', url: '/v1/devices/5' }),
  PRIMARY_DEVICE: async ({ app }) => await call(app, (await someone(app)).token, { method: 'DELETE', url: '/v1/devices/1' }),
  TOO_MANY_DEVICES: async ({ app }) => {
    const { name } = await someone(app)
    const add = async (): Promise<Outcome> => await app.inject(post('/login', { username: name, password: PASSWORD, device: { registrationId: 9 } }))
    for (let i = 2; i <= 6; i++) await add()
    return await add()
  },
  MISMATCHED_DEVICES: async ({ app }) => {
    const [a, b] = await friends(app)
    return await call(app, a.token, { method: 'PUT', url: `/v1/messages/${b.name}`, payload: { messages: [{ type: 1, destinationDeviceId: 9, destinationRegistrationId: 9, content: 'AAAA' }] } })
  },
  STALE_DEVICES: async ({ app }) => {
    const [a, b] = await friends(app)
    await app.inject(post('/login', { username: b.name, password: PASSWORD, device: { id: 1, registrationId: 9 } }))
    return await call(app, a.token, { method: 'PUT', url: `/v1/messages/${b.name}`, payload: { messages: [{ type: 1, destinationDeviceId: 1, destinationRegistrationId: 8, content: 'AAAA' }] } })
  },
  USERNAME_TAKEN: async ({ app }) => await app.inject(post('/register', { username: (await someone(app)).name, password: PASSWORD })),
  USER_NOT_FOUND: async ({ app }) => await call(app, (await someone(app)).token, { url: '/get_key?username=nobody' }),
  KEY_NOT_FOUND: async ({ app }) => {
    const keyless = await someone(app)
    return await call(app, keyless.token, { url: `/get_key?username=${keyless.name}` })
  },
  SELF_REQUEST: async ({ app }) => {
    const me = await someone(app)
    return await names(app, [me, me], '/request_chat', 'recipient_username')
  },
  ALREADY_REQUESTED: async ({ app }) => {
    const two = await strangers(app)
    await names(app, two, '/request_chat', 'recipient_username')
    return await names(app, two, '/request_chat', 'recipient_username')
  },
  ALREADY_CONTACTS: async ({ app }) => await names(app, await friends(app), '/request_chat', 'recipient_username'),
  NO_PENDING_REQUEST: async ({ app }) => await names(app, await strangers(app), '/accept_chat', 'requester_username'),
  NO_SENT_REQUEST: async ({ app }) => await names(app, await strangers(app), '/cancel_request', 'recipient_username'),
  NOT_A_CONTACT: async ({ app }) => {
    const [me, other] = await strangers(app)
    return await call(app, me.token, post('/send_message', { recipient_username: other.name, sender_blob: 'a', recipient_blob: 'b' }))
  },
  WRONG_PASSWORD: async ({ app }) => await call(app, (await someone(app)).token, post('/change_password', { old_password: 'not the password', new_password: 'another password' })),
  SELF_BLOCK: async ({ app }) => {
    const me = await someone(app)
    return await names(app, [me, me], '/block_user', 'username')
  },
  NOT_BLOCKED: async ({ app }) => await names(app, await strangers(app), '/unblock_user', 'username'),
  USER_BLOCKED: async ({ app }) => {
    const two = await strangers(app)
    await names(app, two, '/block_user', 'username')
    return await names(app, two, '/request_chat', 'recipient_username')
  },
  NOT_YOUR_CONTACT: async ({ app }) => await names(app, await strangers(app), '/remove_contact', 'username'),
  RATE_LIMITED: async (_shared, t) => {
    const limited = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_REGISTER: '1/hour' })
    await limited.inject(post('/register', { username: 'first', password: PASSWORD }))
    return await limited.inject(post('/register', { username: 'second', password: PASSWORD }))
  },
  ADMIN_UNAUTHORIZED: async ({ app }) => await app.inject({ url: '/admin/api/stats', headers: bearer('b'.repeat(40)) }),
  INVALID_TIME: async ({ app }) => await app.inject({ url: '/admin/api/messages?since=yesterday', headers: admin }),
  CLIENT_MSG_ID_REUSED: async ({ app }) => {
    const [me, first] = await friends(app)
    const second = await someone(app)
    await befriend(app, me, second)
    await send(app, me, first, { client_msg_id: 'once' })
    return await call(app, me.token, post('/send_message', { recipient_username: second.name, sender_blob: 'a', recipient_blob: 'b', client_msg_id: 'once' }))
  },
  INVALID_SIGNATURE: async ({ app }) => {
    const { token } = await someone(app)
    const identity = newIdentity()
    await call(app, token, { method: 'PUT', url: '/v1/keys/identity', payload: { identityKey: identity.key } })
    return await call(app, token, { method: 'PUT', url: '/v1/keys', payload: { signedPreKey: signedEcKey(newIdentity(), 1) } })
  },
  NO_IDENTITY_KEY: async ({ app }) => await call(app, (await someone(app)).token, { method: 'PUT', url: '/v1/keys', payload: uploadBody(newIdentity()) }),
  NO_PREKEYS: async ({ app }) => {
    const [me, other] = await friends(app)
    return await call(app, me.token, { url: `/v1/keys/${other.name}/*` })
  },
  MESSAGE_NOT_FOUND: async ({ app }) => await call(app, (await someone(app)).token, post('/ack_messages', { up_to_id: 999_999 })),
  CURSOR_EXPIRED: async ({ app }, t) => {
    const [me, other] = await friends(app)
    const start = (await sync(t, app, other.token)).next
    await send(app, me, other)
    // two days on, retention has deleted the events after that cursor
    await app.retention.sweep(Date.now() + 2 * DAY)
    return await call(app, other.token, { url: `/sync?since=${start}` })
  },
  UPGRADE_REQUIRED: async ({ app }) => await call(app, (await someone(app)).token, { url: '/ws' }),
  CURSOR_UNKNOWN: async ({ app }) => await call(app, (await someone(app)).token, { url: '/sync?since=999999-1' }),
  VALIDATION_ERROR: async ({ app }) => await app.inject(post('/register', { username: 'x', password: PASSWORD })),
  MALFORMED_JSON: async ({ app }) => await app.inject({ ...post('/register', {}), payload: '{"username":', headers: { 'content-type': 'application/json' } }),
  PAYLOAD_TOO_LARGE: async ({ app }) => await app.inject(post('/register', { username: 'big', password: 'x'.repeat(300 * 1024) })),
  UNSUPPORTED_MEDIA_TYPE: async ({ app }) => await app.inject({ ...post('/register', {}), payload: 'username=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
  MALFORMED_URL: async ({ app }) => await app.inject({ url: '/get_key/%E0%A4%A' }),
  URL_TOO_LONG: async ({ app }) => await app.inject({ url: `/admin/api/users/${'a'.repeat(200)}`, headers: admin }),
  ROUTE_NOT_FOUND: async ({ app }) => await app.inject({ url: '/nowhere' }),
  BAD_REQUEST: async ({ app }) => await app.inject({ ...post('/register', {}), payload: '{"username":"short"}', headers: { 'content-type': 'application/json', 'content-length': '5' } }),
  DATABASE_UNAVAILABLE: async (_shared, t) => {
    const broken = await build(t)
    await broken.db.destroy()
    return await broken.inject({ url: '/readyz' })
  },
  INTERNAL: async (_shared, t) => await (await appWithFaultyRoute(t)).inject({ url: '/faulty' })
}

t.test('every code the OpenAPI document names is in the catalogue, and the document lists them all', async t => {
  const app = await build(t, { ADMIN_TOKEN })
  const document = JSON.stringify(app.swagger())
  // codes are the UPPER_SNAKE words of the document, and upper-case words quoted as `CODE`;
  // the settings (BODY_LIMIT...) are the others
  const settings = new Set(Object.keys(EnvSchema.properties))
  const words = [...document.matchAll(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|`([A-Z][A-Z0-9_]*)`/g)].map(match => match[1] ?? match[0])
  const named = new Set(words.filter(word => !settings.has(word)))
  t.ok(named.size > 0)
  for (const code of named) t.ok(CODES.has(code), `${code}, named in the OpenAPI document, is in the catalogue`)
  for (const code of CODES) t.ok(named.has(code), `${code} is documented`)
})

t.test('every code of the catalogue is answered to a real request, in the one error shape', async t => {
  t.same(Object.keys(REACH).sort(), [...CODES].sort(), 'one request for each code of the catalogue, and no other')
  const app = await build(t, { ADMIN_TOKEN, MESSAGE_RETENTION_DAYS: '1' })
  const shared = { app, base: await listen(app) }
  for (const { code, statusCode } of catalogue) {
    const reach = REACH[code]
    if (reach === undefined) continue
    await t.test(code, async t => {
      const outcome = await reach(shared, t)
      if ('frame' in outcome) {
        t.match(outcome.frame, { type: 'error', code, message: String })
        t.equal(outcome.closed.reason, code)
      } else {
        isError(t, outcome, statusCode, code)
      }
    })
  }
})
