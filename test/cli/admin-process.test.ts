import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { adminEnv } from '../fixtures/admin.js'
import { build, register } from '../helper.js'

// The CLI as its own process (bin/admin.ts, run with this test's TypeScript loader), beside
// a server that has the same database open: stdout, stderr and exit codes as a shell sees them.

const ENTRY = fileURLToPath(new URL('../../bin/admin.ts', import.meta.url))

async function run (env: Record<string, string>, ...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [...process.execArgv, ENTRY, ...args], {
    // type-checking was done by tsc; the child only needs its TypeScript transpiled
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += String(chunk) })
  child.stderr.on('data', chunk => { stderr += String(chunk) })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, stdout, stderr }
}

t.test('the admin process beside a running server', async t => {
  const env = await adminEnv(t)
  const app = await build(t, env)
  t.equal((await register(app, 'alice')).statusCode, 201)

  const disabled = await run(env, 'disable-user', 'alice')
  t.equal(disabled.code, 0, disabled.stderr)
  t.equal(disabled.stdout, "disabled 'alice'\n")
  const login = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: 'correct horse battery' } })
  t.equal(login.json().code, 'INVALID_CREDENTIALS', 'the running server sees it at once (a disabled account answers as a wrong password)')

  const stats = await run(env, 'stats', '--json')
  t.equal(stats.code, 0, stats.stderr)
  t.match(JSON.parse(stats.stdout), { users: 1, disabled_users: 1 })

  const missing = await run(env, 'user', 'nobody')
  t.same([missing.code, missing.stdout, missing.stderr], [1, '', "error: no user named 'nobody'\n"])
})
