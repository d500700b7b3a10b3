import fc from 'fast-check'
import type { FastifyInstance, InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import { findUserWithHash } from '../../db/users.js'
import { catalogue } from '../../errors.js'
import { ADMIN_TOKEN, PASSWORD, befriend, buildListingRoutes, call, fillParams, primaryDeviceOf, register, snapshot, user, type ListedRoute } from '../helper.js'
import { deviceLogin, publishKeys } from '../fixtures/prekeys.js'

// Property-based fuzzing of every route the app lists, the admin API included (with the
// admin token where a user route gets a user's): paths, bodies, query strings and headers
// derived from each route's own schema, valid-looking and hostile mixed. For every request:
// no 5xx, every error is the one JSON error shape, and a refused request writes nothing.
// FUZZ_SEED (a number, or "random") and FUZZ_RUNS (per route) make a longer run:
//   FUZZ_RUNS=2000 FUZZ_SEED=random npm run fuzz

const SEED = process.env.FUZZ_SEED === 'random' ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED ?? 20261127)
const RUNS = Number(process.env.FUZZ_RUNS ?? 50)
// some 3,000 requests with their database checks: on PostgreSQL under a loaded 2-core machine
// that passed the default two minutes per file (11 s on SQLite when quiet)
t.setTimeout(6 * 60_000)

interface Schema {
  type?: string
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema
  pattern?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
}

// Names and secrets that exist in the fuzzed database, so that generated requests reach past validation.
const KNOWN = ['alice', 'ALICE', 'bob', 'carol', 'dave', 'mallory', 'nobody', PASSWORD]
const NASTY_STRINGS = ['', ' ', '\u0000', 'null', 'undefined', 'NaN', 'Infinity', '-1', '1e999', '9'.repeat(400), '0x1f', "'; drop table users; --",
  '" or 1=1 --', '<script>alert(1)</script>', '../../etc/passwd', '%00', '%', '__proto__', 'constructor', 'alice ', '\u202Ealice', 'ａｌｉｃｅ',
  '\uD800', '🙂'.repeat(40), 'a'.repeat(70_000)]
const NASTY_VALUES: unknown[] = [null, true, false, 0, -1, 1.5, -0, 2 ** 53, 1e308, [], {}, ['alice'], { $gt: '' }, { toString: 'x' }, [[[[[]]]]]]

function plausible (schema: Schema): fc.Arbitrary<unknown> {
  switch (schema.type) {
    case 'string': {
      const min = schema.minLength ?? 0
      const max = schema.maxLength ?? 64
      // at most 64 characters, unless the schema wants more (a Kyber key is 2092)
      const length = { minLength: min, maxLength: Math.max(min, Math.min(max, 64)) }
      // control characters (NUL among them) and all of Unicode, not only printable ASCII
      const options: Array<fc.Arbitrary<unknown>> = [fc.string(length), fc.string({ ...length, unit: 'binary-ascii' }), fc.string({ ...length, unit: 'binary' }), fc.constantFrom(...KNOWN)]
      if (schema.pattern !== undefined) {
        options.push(fc.stringMatching(new RegExp(schema.pattern), { size: 'small' }).filter(s => s.length >= min && s.length <= max))
      }
      return fc.oneof(...options)
    }
    case 'integer': return fc.integer({ min: schema.minimum ?? -(2 ** 31), max: Math.min(schema.maximum ?? 2 ** 31, Number.MAX_SAFE_INTEGER) })
    case 'number': return fc.double()
    case 'boolean': return fc.boolean()
    case 'array': return fc.array(plausible(schema.items ?? {}), { maxLength: 4 })
    case 'object': return objectOf(schema)
    default: return fc.jsonValue({ maxDepth: 2 })
  }
}

function hostile (schema: Schema): fc.Arbitrary<unknown> {
  const options: Array<fc.Arbitrary<unknown>> = [
    fc.constantFrom(...NASTY_STRINGS, ...NASTY_VALUES),
    fc.anything({ maxDepth: 2 }),
    fc.string({ unit: 'binary', maxLength: 40 })
  ]
  if (schema.maxLength !== undefined) options.push(fc.constant('x'.repeat(schema.maxLength + 1)))
  if (schema.maximum !== undefined) options.push(fc.constant(schema.maximum + 1))
  return fc.oneof(...options)
}

function valueFor (schema: Schema): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: plausible(schema), weight: 3 }, { arbitrary: hostile(schema), weight: 2 })
}

/** Objects shaped by the schema: its fields mostly present, sometimes missing, plus stray fields. */
function objectOf (schema: Schema): fc.Arbitrary<Record<string, unknown>> {
  const model = Object.fromEntries(Object.entries(schema.properties ?? {}).map(([key, property]) => [key, valueFor(property)]))
  const extra = fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('id', 'user_id', 'is_admin', 'status', 'constructor')), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })
  return fc.tuple(fc.oneof({ arbitrary: fc.record(model), weight: 3 }, { arbitrary: fc.record(model, { requiredKeys: [] }), weight: 1 }), fc.oneof(fc.constant({}), extra))
    .map(([fields, stray]) => ({ ...stray, ...fields }))
}

const RAW_BODIES = ['', '{', '{"a":', 'null', '[]', '"text"', '1e999', '['.repeat(10_000), '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}', '\u0000', '{"username":"alice","username":"bob"}', '\uFEFF{}', `{"x":"${'a'.repeat(300_000)}"}`]

function bodyFor (route: ListedRoute): fc.Arbitrary<string | undefined> {
  const shaped = route.schema.body === undefined ? fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }) : objectOf(route.schema.body as Schema)
  return fc.oneof(
    { arbitrary: shaped.map(value => JSON.stringify(value)), weight: 8 },
    { arbitrary: fc.jsonValue({ maxDepth: 3 }).map(value => JSON.stringify(value)), weight: 1 },
    { arbitrary: fc.constantFrom(...RAW_BODIES), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 100 }), weight: 1 },
    { arbitrary: fc.constant(undefined), weight: 1 }
  )
}

const RAW_QUERIES = ['%', '%E0%A4%A', 'a[b]=c', '&&&', '=', '==x', 'username', 'username=', 'username[]=alice', 'username[$ne]=x', 'since_id=1e999',
  'since_id=Infinity', 'since_id=-1', `since_id=${'9'.repeat(400)}`, 'limit=0', 'limit=1001', 'token=abc', 'username=%ED%A0%80', 'username=%FF%FE', 'username=alice%00']

/** encodeURIComponent, except that a lone surrogate goes out as its (invalid) UTF-8 bytes instead of throwing */
function percentEncode (text: string): string {
  try {
    return encodeURIComponent(text)
  } catch {
    return [...Buffer.from(text)].map(byte => `%${byte.toString(16).padStart(2, '0')}`).join('')
  }
}

function queryFor (route: ListedRoute): fc.Arbitrary<string> {
  const schema = route.schema.querystring as Schema | undefined
  const shaped = objectOf(schema ?? { properties: {} }).chain(fields => fc.tuple(
    fc.constant(fields),
    fc.constantFrom(...Object.keys(fields).concat(['']))
  )).map(([fields, repeated]) => Object.entries(fields)
    .flatMap(([key, value]) => {
      const text = typeof value === 'string' ? value : JSON.stringify(value) ?? ''
      const pair = `${percentEncode(key)}=${percentEncode(text)}`
      return key === repeated ? [pair, pair] : [pair]
    }).join('&'))
  return fc.oneof({ arbitrary: shaped, weight: 6 }, { arbitrary: fc.constantFrom(...RAW_QUERIES), weight: 1 }, { arbitrary: fc.constant(''), weight: 1 })
}

const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/xml', '']

interface Tokens { valid: () => Promise<string>, dead: string[] }

/** The token that opens the route: the admin token for the admin API, a user's for the rest. */
function validFor (route: ListedRoute, tokens: Tokens): () => Promise<string> {
  return route.guard === 'admin' ? async () => ADMIN_TOKEN : tokens.valid
}

function authorizationFor (route: ListedRoute, tokens: Tokens): fc.Arbitrary<(() => Promise<string>) | string | undefined> {
  const forged = fc.constantFrom(...tokens.dead, ADMIN_TOKEN).chain(token => fc.constantFrom(
    `Bearer ${token}`, `Bearer ${token}x`, `Bearer ${token.split('.').slice(0, 2).join('.')}.`, `Bearer ${noneAlg(token)}`, `bearer ${token}`, `Bearer  ${token} `
  ))
  // the other kind of token: a user's live one on the admin API, the admin token on a user route
  const wrongKind = route.guard === 'admin' ? fc.constant(tokens.valid) : fc.constant(`Bearer ${ADMIN_TOKEN}`)
  return fc.oneof(
    { arbitrary: fc.constant(validFor(route, tokens)), weight: 8 },
    { arbitrary: forged, weight: 3 },
    { arbitrary: wrongKind, weight: 1 },
    { arbitrary: fc.constantFrom(undefined, '', 'Bearer', 'Bearer ', 'Basic YWxpY2U6cGFzcw==', 'Bearer a.b.c', `Bearer ${'a'.repeat(10_000)}`, 'Bearer ..', 'Bearer e30.e30.'), weight: 2 },
    { arbitrary: fc.string({ maxLength: 60 }).map(text => `Bearer ${text}`), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 60 }), weight: 1 }
  )
}

/** The token with its header switched to alg "none" and no signature. */
function noneAlg (token: string): string {
  const [, payload = ''] = token.split('.')
  return `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`
}

/** The route's path with each `:param` drawn from its params schema (a real name most of the time). */
function pathFor (route: ListedRoute): fc.Arbitrary<string> {
  const names = [...route.url.matchAll(/:([A-Za-z_]+)/g)].map(match => match[1] ?? '')
  if (names.length === 0) return fc.constant(route.url)
  const properties = (route.schema.params as Schema | undefined)?.properties ?? {}
  return fc.tuple(...names.map(name => valueFor(properties[name] ?? { type: 'string' })))
    .map(values => {
      let index = 0
      return route.url.replace(/:[A-Za-z_]+/g, () => {
        const value = values[index++]
        return percentEncode(typeof value === 'string' ? value : JSON.stringify(value) ?? '')
      })
    })
}

function requestFor (route: ListedRoute, tokens: Tokens): fc.Arbitrary<{ options: InjectOptions, auth: (() => Promise<string>) | string | undefined }> {
  return fc.record({
    method: fc.oneof({ arbitrary: fc.constant(route.method), weight: 8 }, { arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), weight: 1 }),
    path: pathFor(route).chain(path => fc.oneof({ arbitrary: fc.constant(path), weight: 8 }, { arbitrary: fc.constantFrom(`${path}/`, path.toUpperCase(), `/${path}`, `${path}/x`, `${path}%00`), weight: 1 })),
    query: queryFor(route),
    body: bodyFor(route),
    contentType: fc.oneof({ arbitrary: fc.constant('application/json'), weight: 6 }, { arbitrary: fc.constantFrom(...CONTENT_TYPES), weight: 1 }),
    auth: authorizationFor(route, tokens),
    accept: fc.constantFrom(undefined, '*/*', 'text/html', 'application/xml'),
    forwarded: fc.constantFrom(undefined, '1.2.3.4', 'garbage', '::1, 10.0.0.1', '')
  }).map(({ method, path, query, body, contentType, auth, accept, forwarded }) => {
    const headers: Record<string, string> = {}
    if (body !== undefined && contentType !== '') headers['content-type'] = contentType
    if (accept !== undefined) headers.accept = accept
    if (forwarded !== undefined) headers['x-forwarded-for'] = forwarded
    const options: InjectOptions = { method: method as InjectOptions['method'], url: query === '' ? path : `${path}?${query}`, headers, ...(body === undefined ? {} : { payload: body }) }
    return { options, auth }
  })
}

function describe (options: InjectOptions): string {
  return JSON.stringify({ ...options, payload: typeof options.payload === 'string' ? options.payload.slice(0, 300) : options.payload }).slice(0, 1000)
}

/** Alice (whose token the fuzzer mostly uses) with a contact, a pending request each way, a block and a conversation. */
async function world (app: FastifyInstance): Promise<Tokens> {
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  const carol = await user(app, 'carol')
  const mallory = await user(app, 'mallory')
  await user(app, 'dave')
  await befriend(app, alice, bob)
  // one of her own to withdraw (cancel_request)
  await call(app, alice.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'dave' } })
  await call(app, carol, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
  await call(app, alice.token, { method: 'POST', url: '/block_user', payload: { username: 'mallory' } })
  await call(app, alice.token, { method: 'POST', url: '/upload_key', payload: { public_key: 'alice key' } })
  await call(app, bob.token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 's', recipient_blob: 'r' } })
  // bundles to claim: bob's registered device 1 (his earlier token ends), and keys of alice's own
  await publishKeys(app, await deviceLogin(app, 'bob', { id: 1, registrationId: 2 }), { ec: 20, pq: 20 })
  await publishKeys(app, alice.token)
  await call(app, mallory, { method: 'POST', url: '/logout' })
  const gone = await user(app, 'gone')
  await call(app, gone, { method: 'POST', url: '/delete_account', payload: { password: PASSWORD } })
  return {
    // a fresh token each time: the fuzzer may log alice out, change her password or even
    // delete her; through the admin API, disable her too
    async valid () {
      let row = await findUserWithHash(app.db, 'alice')
      if (row === undefined) {
        await register(app, 'alice')
        row = await findUserWithHash(app.db, 'alice')
      }
      await app.db.updateTable('users').set({ disabled_at: null }).where('username', '=', 'alice').where('disabled_at', 'is not', null).execute()
      return app.issueToken(row ?? { id: 0, username: 'alice', token_version: 0 }, row === undefined ? { key: 0, id: 1 } : await primaryDeviceOf(app.db, row.id)).token
    },
    dead: [mallory, gone, alice.token]
  }
}

/** One request against the invariants: no 5xx, the JSON error shape, and a refusal writes nothing. */
async function check (app: FastifyInstance, request: InjectOptions, seen: Record<number, number>): Promise<void> {
  const before = await snapshot(app)
  const res = await app.inject(request)
  seen[res.statusCode] = (seen[res.statusCode] ?? 0) + 1
  const where = `${res.statusCode} ${res.body.slice(0, 300)} for ${describe(request)}`
  if (res.statusCode >= 500) throw new Error(`server error: ${where}`)
  if (res.statusCode < 400) return
  if (request.method !== 'HEAD') {
    if (!/^application\/json/.test(String(res.headers['content-type']))) throw new Error(`error is not JSON: ${where}`)
    const body = res.json()
    const shaped = body.statusCode === res.statusCode && typeof body.error === 'string' && typeof body.message === 'string' &&
      body.message.length > 0 && typeof body.code === 'string' && body.code.length > 0
    if (!shaped) throw new Error(`error shape: ${where}`)
    if (!catalogue.some(entry => entry.code === body.code)) throw new Error(`a code outside the catalogue (errors.ts): ${where}`)
  }
  const after = await snapshot(app)
  // a wrong admin token, and the first refusal of its address, are written to the audit log (and only there)
  if (request.method !== 'HEAD' && /^\/admin\/api\//.test(String(request.url)) && ['ADMIN_UNAUTHORIZED', 'RATE_LIMITED'].includes(res.json().code)) {
    delete before.admin_audit
    delete after.admin_audit
  }
  if (JSON.stringify(after) !== JSON.stringify(before)) throw new Error(`a refused request wrote ${JSON.stringify(before)} -> ${JSON.stringify(after)}: ${where}`)
}

/** A value the schema accepts, naming a real user where it can (so that the request reaches the handler). */
function validValue (schema: Schema): unknown {
  switch (schema.type) {
    case 'string': {
      if (schema.pattern !== undefined && new RegExp(schema.pattern).test('bob')) return 'bob'
      return 'v'.repeat(Math.max(schema.minLength ?? 1, 8))
    }
    case 'integer':
    case 'number': return schema.minimum ?? 0
    case 'boolean': return true
    case 'array': return []
    case 'object': return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([key, property]) => [key, validValue(property)]))
    default: return null
  }
}

t.test('every field of every route, one hostile value at a time, with a valid token', async t => {
  const { app, routes } = await buildListingRoutes(t)
  const tokens = await world(app)
  const seen: Record<number, number> = {}
  let sent = 0
  for (const route of routes) {
    for (const part of ['body', 'querystring'] as const) {
      const schema = route.schema[part] as Schema | undefined
      if (schema?.properties === undefined) continue
      for (const field of Object.keys(schema.properties)) {
        for (const value of [...NASTY_STRINGS, ...NASTY_VALUES, undefined]) {
          const fields = { ...(validValue(schema) as Record<string, unknown>), [field]: value }
          const headers: Record<string, string> = { authorization: `Bearer ${await validFor(route, tokens)()}` }
          let url = fillParams(route.url, 'bob')
          let payload: string | undefined
          if (part === 'body') {
            payload = JSON.stringify(fields)
            headers['content-type'] = 'application/json'
          } else {
            url += '?' + Object.entries(fields).filter(([, v]) => v !== undefined)
              .map(([key, v]) => `${key}=${percentEncode(typeof v === 'string' ? v : JSON.stringify(v) ?? '')}`).join('&')
          }
          await check(app, { method: route.method as InjectOptions['method'], url, headers, ...(payload === undefined ? {} : { payload }) }, seen)
          sent++
        }
      }
    }
  }
  t.comment(`${sent} requests, statuses: ${JSON.stringify(seen)}`)
  t.ok(sent > 500, `${sent} single-field variations sent: no 5xx, JSON errors, refusals wrote nothing`)
})

t.test('fuzzing every route', async t => {
  await fuzzEveryRoute(t, {}, RUNS)
})

// every limit small, so that the fuzzer meets each one's 429 (and what follows it): the
// per-IP ones and the message ones just above what building the world takes, the others at one
t.test('fuzzing every route with every limit nearly spent', async t => {
  const limits = Object.fromEntries([
    ...['REGISTER', 'LOGIN', 'REQUEST_CHAT', 'ACCEPT_CHAT', 'SEND_MESSAGE', 'SEND_MESSAGE_SENDER', 'SEND_MESSAGE_PAIR'].map(name => [name, '10/hour']),
    ...['LOGIN_FAILURES', 'LOGIN_FAILURES_ACCOUNT', 'SESSION_PASSWORD_FAILURES', 'UPLOAD_KEY', 'LOOKUPS', 'ADMIN_FAILURES', 'PREKEYS'].map(name => [name, '1/hour'])
  ].map(([name, limit]) => [`RATE_LIMIT_${name}`, limit]))
  const seen = await fuzzEveryRoute(t, { RATE_LIMIT: 'on', ...limits, RATE_LIMIT_CONNECTIONS_PER_USER: '1', RATE_LIMIT_CONNECTIONS_PER_ADDRESS: '1' }, Math.ceil(RUNS / 5))
  t.ok((seen[429] ?? 0) > 0, 'the limits answered 429')
})

async function fuzzEveryRoute (t: Test, env: Record<string, string>, runs: number): Promise<Record<number, number>> {
  const { app, routes } = await buildListingRoutes(t, env)
  const tokens = await world(app)
  const targets: ListedRoute[] = [...routes, { method: 'GET', url: '/no_such_route', schema: {}, guard: 'none', documented: undefined }]
  t.ok(routes.some(route => route.guard === 'admin'), 'the admin API is among the routes fuzzed')
  t.comment(`fuzz: seed=${SEED} runs=${runs} per route, ${targets.length} routes (FUZZ_SEED, FUZZ_RUNS to change)`)
  process.stderr.write(`fuzz: seed=${SEED} runs=${runs} per route, ${targets.length} routes\n`)
  const seen: Record<number, number> = {}

  for (const [index, route] of targets.entries()) {
    await t.test(`${route.method} ${route.url}`, async t => {
      await fc.assert(fc.asyncProperty(requestFor(route, tokens), async ({ options, auth }) => {
        const authorization = typeof auth === 'function' ? `Bearer ${await auth()}` : auth
        const request = { ...options, headers: { ...(options.headers as Record<string, string>), ...(authorization === undefined ? {} : { authorization }) } }
        await check(app, request, seen)
      }), { seed: SEED + index, numRuns: runs })
      t.pass(`${runs} requests: no 5xx, JSON errors, refusals wrote nothing`)
    })
  }
  t.comment(`statuses seen: ${JSON.stringify(seen)}`)
  process.stderr.write(`fuzz statuses: ${JSON.stringify(seen)}\n`)
  t.ok(Object.keys(seen).some(status => Number(status) < 300), 'some requests got through, so the fuzzer reaches the handlers')
  return seen
}
