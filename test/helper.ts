import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifySchema, type InjectOptions, type LightMyRequestResponse } from 'fastify'
import fp from 'fastify-plugin'
import type { Test } from 'tap'
import { app as appPlugin, buildApp, serverOptions } from '../app.js'
import { loadConfig, type Config } from '../config.js'
import { createSchema, dropSchema } from '../db/migrate.js'

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
  return loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', RATE_LIMIT: 'off', ...await freshDatabaseEnv(t), ...env })
}

/** The app on a fresh migrated database, closed when the test ends. */
export async function build (t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(await testConfig(t, env))
  t.teardown(async () => { await app.close() })
  return app
}

export interface ListedRoute {
  method: string
  url: string
  schema: FastifySchema & { security?: unknown[], hide?: boolean, querystring?: unknown, body?: unknown }
  /** needs a user's `Authorization: Bearer <token>` (documented with the bearerAuth scheme in OpenAPI) */
  protected: boolean
}

/**
 * The app as build() makes it, with the list of every route it registered (HEAD twins and
 * the hidden /docs routes left out), so that a suite can cover routes it does not name.
 */
export async function buildListingRoutes (t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, routes: ListedRoute[] }> {
  const config = await testConfig(t, env)
  const app = Fastify(serverOptions(config))
  const routes: ListedRoute[] = []
  app.addHook('onRoute', route => {
    const schema = (route.schema ?? {}) as ListedRoute['schema']
    for (const method of [route.method].flat()) {
      if (method === 'HEAD' || schema.hide === true || route.url.startsWith('/docs')) continue
      const userToken = (schema.security ?? []).some(scheme => typeof scheme === 'object' && scheme !== null && 'bearerAuth' in scheme)
      routes.push({ method, url: route.url, schema, protected: userToken })
    }
  })
  await app.register(fp(appPlugin), { config })
  await app.ready()
  t.teardown(async () => { await app.close() })
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

/** Row counts of every table, to assert that a refused request changed nothing. */
export async function snapshot (app: FastifyInstance): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const table of ['users', 'public_keys', 'chat_requests', 'messages', 'revoked_tokens', 'blocks', 'events', 'admin_audit', 'import_map'] as const) {
    const row = await app.db.selectFrom(table).select(eb => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    counts[table] = Number(row.n)
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
