import { createHash, randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifySchema, type InjectOptions, type LightMyRequestResponse } from 'fastify'
import fp from 'fastify-plugin'
import { DEFAULT_MIGRATION_LOCK_TABLE, DEFAULT_MIGRATION_TABLE, PostgresAdapter, sql, type Kysely } from 'kysely'
import type { Test } from 'tap'
import { app as appPlugin, buildApp, serverOptions } from '../app.js'
import { loadConfig, type Config } from '../config.js'
import { primaryDevice, type Device } from '../db/devices.js'
import { createSchema, dropSchema } from '../db/migrate.js'
import type { Database } from '../db/schema.js'

// Each test file gets its own fresh database: SQLite in memory by default, or, when
// DATABASE_URL points at PostgreSQL, a schema of its own that is dropped at teardown.

export const postgresUrl = /^postgres(ql)?:/.test(process.env.DATABASE_URL ?? '') ? process.env.DATABASE_URL : undefined
export const redisUrl = process.env.REDIS_URL === '' ? undefined : process.env.REDIS_URL

export const PASSWORD = 'correct horse battery'

export async function freshDatabaseEnv (t: Test): Promise<Record<string, string>> {
  if (postgresUrl === undefined) return { DATABASE_URL: 'sqlite::memory:' }
  const schema = `test_${randomBytes(6).toString('hex')}`
  await createSchema(postgresUrl, schema)
  t.teardown(async () => { await dropSchema(postgresUrl, schema) })
  return { DATABASE_URL: postgresUrl, DATABASE_SCHEMA: schema }
}

export async function testConfig (t: Test, env: Record<string, string> = {}): Promise<Config> {
  // a Redis namespace of its own, like the database: test files share the machine's Redis
  const REDIS_PREFIX = `test-${randomBytes(6).toString('hex')}:`
  // with REDIS_URL (the PostgreSQL + Redis run) every app runs the Redis hub and limits, on its own prefix
  const redis: Record<string, string> = redisUrl === undefined ? {} : { REDIS_URL: redisUrl }
  const merged: Record<string, string> = { NODE_ENV: 'test', LOG_LEVEL: 'silent', RATE_LIMIT: 'off', ...redis, REDIS_PREFIX, ...await freshDatabaseEnv(t), ...env }
  if (merged.REDIS_URL === '') delete merged.REDIS_URL // REDIS_URL: '' asks for the in-process hub
  return loadConfig(merged)
}

/** The app on a fresh migrated database, closed when the test ends. */
export async function build (t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(await testConfig(t, env))
  t.teardown(async () => { await app.close() })
  return app
}

/** The app's logger options with every line it writes parsed into `lines`, for a test that reads the log. */
export function capturedLogs (config: Config): { logger: Record<string, unknown>, lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  return { logger: { ...serverOptions(config).logger as Record<string, unknown>, stream }, lines }
}

/** The ADMIN_TOKEN buildListingRoutes() sets, so that the admin API is listed (and covered) too. */
export const ADMIN_TOKEN = randomBytes(32).toString('base64url')

/** Who a route lets in: a user's token, the admin token, or anyone. */
export type Guard = 'user' | 'admin' | 'none'

export interface ListedRoute {
  method: string
  url: string
  schema: FastifySchema & { security?: unknown[], hide?: boolean, querystring?: unknown, body?: unknown, params?: unknown, tags?: string[] }
  /**
   * What the route does with a request that has no token, found by sending one: a 401 asking
   * for a user's token ('user'), a 401 asking for the admin token ('admin'), or anything else
   * ('none'). Read from what the route does, not from what its documentation says.
   */
  guard: Guard
  /** What its OpenAPI security annotation says; undefined for a route the document leaves out (X-HIDDEN: GET /ws). */
  documented: Guard | undefined
}

/** The route's URL with each `:param` filled in with a plausible value. */
export function fillParams (url: string, value = 'alice'): string {
  return url.replace(/:[A-Za-z_]+/g, value)
}

async function guardOf (app: FastifyInstance, method: string, url: string): Promise<Guard> {
  const res = await app.inject({ method: method as InjectOptions['method'], url: fillParams(url) })
  if (res.statusCode !== 401) return 'none'
  return res.json().code === 'ADMIN_UNAUTHORIZED' ? 'admin' : 'user'
}

function documentedGuard (operation: { security?: Array<Record<string, unknown>> } | undefined): Guard | undefined {
  if (operation === undefined) return undefined
  const schemes = (operation.security ?? []).flatMap(scheme => Object.keys(scheme))
  return schemes.includes('adminToken') ? 'admin' : schemes.includes('bearerAuth') ? 'user' : 'none'
}

/**
 * The app as build() makes it (with ADMIN_TOKEN set), with the list of every route it
 * registered (HEAD twins and the hidden /docs and console routes left out), so that a suite
 * can cover routes it does not name. Each route's guard is found by sending it a request
 * without a token; its OpenAPI annotation is read from /docs/json.
 */
export async function buildListingRoutes (
  t: Test, env: Record<string, string> = {}, extra?: (app: FastifyInstance) => Promise<void>
): Promise<{ app: FastifyInstance, routes: ListedRoute[] }> {
  const config = await testConfig(t, { ADMIN_TOKEN, ...env })
  const app = Fastify(serverOptions(config))
  const registered: Array<Pick<ListedRoute, 'method' | 'url' | 'schema'>> = []
  app.addHook('onRoute', route => {
    const schema = (route.schema ?? {}) as ListedRoute['schema']
    for (const method of [route.method].flat()) {
      if (method === 'HEAD' || schema.hide === true || route.url.startsWith('/docs')) continue
      registered.push({ method, url: route.url, schema })
    }
  })
  await app.register(fp(appPlugin), { config })
  // routes a test adds beside the app's own, to show what the listing makes of them
  if (extra !== undefined) await app.register(fp(extra))
  await app.ready()
  t.teardown(async () => { await app.close() })
  const paths = (await app.inject({ method: 'GET', url: '/docs/json' })).json().paths as Record<string, Record<string, { security?: Array<Record<string, unknown>> }>>
  const routes: ListedRoute[] = []
  for (const route of registered) {
    const operation = paths[route.url.replace(/:([A-Za-z_]+)/g, '{$1}')]?.[route.method.toLowerCase()]
    routes.push({ ...route, guard: await guardOf(app, route.method, route.url), documented: documentedGuard(operation) })
  }
  return { app, routes }
}

export function bearer (token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` }
}

export async function register (app: FastifyInstance, username: string, password = PASSWORD): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/register', payload: { username, password } })
}

export async function login (app: FastifyInstance, username: string, password = PASSWORD): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username, password } })
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
  return res.json().token
}

/** Registers and logs in a user; returns its token. */
export async function user (app: FastifyInstance, username: string): Promise<string> {
  const res = await register(app, username)
  if (res.statusCode !== 201) throw new Error(`register ${username}: ${res.statusCode} ${res.body}`)
  return await login(app, username)
}

/** An authenticated request. */
export async function call (app: FastifyInstance, token: string, options: InjectOptions): Promise<LightMyRequestResponse> {
  return await app.inject({ ...options, headers: { ...options.headers, ...bearer(token) } })
}

/** Makes two users accepted contacts. */
export async function befriend (app: FastifyInstance, a: { name: string, token: string }, b: { name: string, token: string }): Promise<void> {
  const asked = await call(app, a.token, { method: 'POST', url: '/request_chat', payload: { recipient_username: b.name } })
  if (asked.statusCode !== 201) throw new Error(`request_chat: ${asked.statusCode} ${asked.body}`)
  const accepted = await call(app, b.token, { method: 'POST', url: '/accept_chat', payload: { requester_username: a.name } })
  if (accepted.statusCode !== 200) throw new Error(`accept_chat: ${accepted.statusCode} ${accepted.body}`)
}

/** The app's own tables, read from the schema (Kysely's migration tables left out), each file's database once. */
const tablesOf = new WeakMap<Kysely<Database>, Promise<string[]>>()

async function readTables (db: Kysely<Database>): Promise<string[]> {
  // information_schema on PostgreSQL: only this test's schema (Kysely's introspection lists every schema's tables)
  const query = db.getExecutor().adapter instanceof PostgresAdapter
    ? sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`
    : sql<{ name: string }>`select name from sqlite_master where type = 'table' and substr(name, 1, 7) <> 'sqlite_'`
  const { rows } = await query.execute(db)
  const names = rows.map(row => row.name).filter(name => name !== DEFAULT_MIGRATION_TABLE && name !== DEFAULT_MIGRATION_LOCK_TABLE).sort()
  if (names.length === 0) throw new Error('no tables found: is the database migrated?')
  return names
}

export async function tableNames (db: Kysely<Database>): Promise<string[]> {
  let names = tablesOf.get(db)
  if (names === undefined) tablesOf.set(db, names = readTables(db))
  return await names
}

/** A value as the same text on both databases: 0/1 for booleans, epoch ms for times, hex for bytes. */
function normalise (value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'bigint') return Number(value)
  if (value instanceof Date) return value.getTime()
  if (Buffer.isBuffer(value)) return value.toString('hex')
  return value
}

/** Every row of the table as canonical JSON (columns by name), sorted: its contents whatever the order rows come back in. */
async function tableRows (db: Kysely<Database>, table: string): Promise<string[]> {
  const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(db)
  return rows.map(row => JSON.stringify(Object.keys(row).sort().map(column => [column, normalise(row[column])]))).sort()
}

/**
 * A SHA-256 of each table's contents, over every table the schema has, to assert that a
 * refused request changed nothing: a changed value (a password hash, a request's status,
 * `delivered_at`) shows as well as an added or deleted row.
 */
export async function snapshot (app: FastifyInstance): Promise<Record<string, string>> {
  const digests: Record<string, string> = {}
  for (const table of await tableNames(app.db)) {
    const rows = await tableRows(app.db, table)
    digests[table] = `${rows.length} rows, sha256 ${createHash('sha256').update(rows.join('\n')).digest('hex')}`
  }
  return digests
}

/** Row counts of every table the schema has, for a test that expects a known number of rows. */
export async function rowCounts (app: FastifyInstance): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const table of await tableNames(app.db)) {
    const { rows } = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(app.db)
    counts[table] = Number(rows[0]?.n)
  }
  return counts
}

/** Asserts the one error shape, with the expected status and code. */
export function isError (t: Test, res: LightMyRequestResponse, statusCode: number, code?: string): void {
  t.equal(res.statusCode, statusCode, `status ${statusCode}: ${res.body.slice(0, 200)}`)
  t.match(res.headers['content-type'], /application\/json/)
  const body = res.json()
  t.equal(body.statusCode, statusCode)
  t.type(body.error, 'string')
  t.type(body.message, 'string')
  t.ok(body.message.length > 0, 'message is meaningful')
  if (code !== undefined) t.equal(body.code, code)
}

/** The keys of the user's devices, as a subquery (`where('device_id', 'in', devicesOf(db, id))`). */
export function devicesOf (db: Kysely<Database>, userId: number) {
  return db.selectFrom('devices').select('id').where('user_id', '=', userId)
}

/** The user's device 1, as a token names it. */
export async function primaryDeviceOf (db: Kysely<Database>, userId: number): Promise<Device> {
  const device = await primaryDevice(db, userId)
  if (device === undefined) throw new Error(`user ${userId} has no device 1`)
  return device
}
