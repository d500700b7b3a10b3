import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { freshDatabaseEnv, postgresUrl, redisUrl } from '../helper.js'
import { listening, startServer, stopProcess } from '../processes.js'
import { Client } from '../realtime-helper.js'

// Two real server processes of one service (one PostgreSQL schema, one Redis, one
// JWT_SECRET) and the admin CLI as a third process: what a socket on A sees of what
// happens through B and through the CLI.

const skip = postgresUrl === undefined || redisUrl === undefined ? 'needs DATABASE_URL (PostgreSQL) and REDIS_URL' : false
const ADMIN = fileURLToPath(new URL('../../bin/admin.ts', import.meta.url))
t.setTimeout(5 * 60_000) // two servers compiled from the TypeScript sources

async function post (base: string, path: string, body: unknown, token?: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...token === undefined ? {} : { authorization: `Bearer ${token}` } },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() }
}

async function account (base: string, username: string): Promise<string> {
  await post(base, '/register', { username, password: 'correct horse battery' })
  return (await post(base, '/login', { username, password: 'correct horse battery' })).body.token
}

async function cli (env: Record<string, string>, ...args: string[]): Promise<{ code: number | null, stderr: string }> {
  const child = spawn(process.execPath, [...process.execArgv, ADMIN, ...args], {
    env: { PATH: process.env.PATH, TS_NODE_TRANSPILE_ONLY: '1', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', chunk => { stderr += String(chunk) })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, stderr }
}

t.test('a socket on process A gets a message sent through process B, and closes at once on a CLI disable', { skip }, async t => {
  const env = {
    ...await freshDatabaseEnv(t),
    JWT_SECRET: randomBytes(32).toString('base64'),
    REDIS_URL: redisUrl ?? '',
    REDIS_PREFIX: `test-${randomBytes(6).toString('hex')}:`,
    LOG_LEVEL: 'info',
    RATE_LIMIT: 'off'
  }
  const servers = [startServer(env), startServer(env)]
  t.teardown(async () => { await Promise.all(servers.map(async server => { await stopProcess(server.child) })) })
  const [a, b] = await Promise.all(servers.map(listening)) as [string, string]
  t.same(await (await fetch(`${a}/readyz`)).json(), { status: 'ready', hub: 'connected' })

  const alice = await account(b, 'alice')
  const bob = await account(a, 'bob')
  t.equal((await post(b, '/request_chat', { recipient_username: 'bob' }, alice)).status, 201)
  t.equal((await post(a, '/accept_chat', { requester_username: 'alice' }, bob)).status, 200)

  const socket = await Client.open(a.replace('http', 'ws'), bob)
  await socket.until('ready')
  const sent = await post(b, '/send_message', { recipient_username: 'bob', sender_blob: 'for alice', recipient_blob: 'for bob' }, alice)
  t.equal(sent.status, 201)
  t.match(await socket.next(), { type: 'message', message: { id: sent.body.id, encrypted_blob: 'for bob' } })

  // the CLI process publishes the session end; the ping (30 s) would close it with ACCOUNT_DISABLED instead
  const started = Date.now()
  const disabled = await cli(env, 'disable-user', 'bob')
  t.equal(disabled.code, 0, disabled.stderr)
  const ended = Date.now()
  t.match(await socket.next(), { type: 'error', code: 'SESSION_ENDED' })
  t.same(await socket.closed, { code: 4401, reason: 'SESSION_ENDED' })
  t.comment(`socket closed ${Date.now() - ended} ms after the CLI exited (${ended - started} ms to run it)`)
})
