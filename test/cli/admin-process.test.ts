import t from 'tap'
import { adminEnv, adminProcess as run } from '../fixtures/admin.js'
import { build, register } from '../helper.js'

// The CLI as its own process (bin/admin.ts, run with this test's TypeScript loader), beside
// a server that has the same database open: stdout, stderr and exit codes as a shell sees them.

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
