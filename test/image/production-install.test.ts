import { execFileSync, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import t from 'tap'

// No Docker engine runs here, so this does what the Dockerfile does: a clean copy of the
// committed tree, `npm ci`, build, prune to production dependencies, then the image's own
// CMD with its environment, probed with its own HEALTHCHECK command. It takes minutes
// (native modules build from source), so it runs when IMAGE_TEST=1 (.ci/run sets it).

const root = join(import.meta.dirname, '..', '..')

const skip = process.env.IMAGE_TEST === '1' ? false : 'set IMAGE_TEST=1 to run (minutes; .ci/run does)'

t.test('a production install of a clean copy starts with the image command and passes its health check', { skip }, async t => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null') as string[]
  const health = JSON.parse(/^\s*CMD (\["node", "-e".*\])$/m.exec(dockerfile)?.[1] ?? 'null') as string[]
  t.ok(cmd, 'the Dockerfile has a CMD')
  t.ok(health, 'the Dockerfile has a HEALTHCHECK')
  // CI runs this on the image's Node (.ci/run's Node 24 leg): the same major as the Dockerfile's base
  const imageNode = /^ARG NODE_VERSION=(\d+)$/m.exec(dockerfile)?.[1]
  t.ok(imageNode, 'the Dockerfile names its Node major')
  if (process.env.CI === 'true') t.equal(process.versions.node.split('.')[0], imageNode, `runs on the image's Node ${imageNode ?? ''}`)

  const work = mkdtempSync(join(tmpdir(), 'cc-image-'))
  t.teardown(() => { rmSync(work, { recursive: true, force: true }) })
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean)
  const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').filter(Boolean)
  for (const file of files) {
    if (ignored.some(pattern => file === pattern || file.startsWith(pattern + '/'))) continue
    cpSync(join(root, file), join(work, file), { recursive: true })
  }
  const run = (command: string, args: string[]): void => { execFileSync(command, args, { cwd: work, stdio: 'inherit', env: { ...process.env, NODE_ENV: '' } }) }
  run('npm', ['ci', '--no-audit', '--no-fund'])
  run('npm', ['run', 'build'])
  run('npm', ['prune', '--omit=dev'])
  rmSync(join(work, 'node_modules', 'typescript'), { recursive: true, force: true })
  t.throws(() => execFileSync(process.execPath, ['-e', "require.resolve('tap')"], { cwd: work, stdio: 'ignore' }), 'dev dependencies are gone')
  // Signal's client library is AGPL-3.0 and for tests only: neither installed nor referenced by the build
  // (npm prune removes the package but leaves its scope folder behind, empty)
  const scope = join(work, 'node_modules', '@signalapp')
  t.same(existsSync(scope) ? readdirSync(scope) : [], [], 'nothing in node_modules/@signalapp after the production install')
  t.same(readdirSync(join(work, 'node_modules'), { recursive: true, encoding: 'utf8' }).filter(path => path.includes('libsignal')), [], 'no libsignal anywhere in node_modules')
  t.throws(() => execFileSync(process.execPath, ['-e', "require.resolve('@signalapp/libsignal-client')"], { cwd: work, stdio: 'ignore' }), 'libsignal cannot be resolved')
  const built = readdirSync(join(work, 'dist'), { recursive: true, encoding: 'utf8' }).filter(file => file.endsWith('.js'))
  t.ok(built.includes('server.js'), 'the build is there')
  t.same(built.filter(file => readFileSync(join(work, 'dist', file), 'utf8').includes('@signalapp/')), [], 'no built file imports @signalapp')

  const env = { PATH: process.env.PATH ?? '', NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(20000 + Math.floor(Math.random() * 20000)), DATA_DIR: join(work, 'data'), JWT_SECRET: 'image-test-secret-' + 'Zq8vL3nR6tW1yB4m'.repeat(2) }
  const [command = 'node', ...args] = cmd
  const server = spawn(command === 'node' ? process.execPath : command, args, { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  server.stdout.on('data', chunk => { output += String(chunk) })
  server.stderr.on('data', chunk => { output += String(chunk) })
  t.teardown(() => { server.kill('SIGKILL') })
  let healthy = false
  for (let i = 0; i < 100 && !healthy && server.exitCode === null; i++) {
    await new Promise(resolve => setTimeout(resolve, 200))
    const [healthCommand = 'node', ...healthArgs] = health
    const probe = spawn(healthCommand === 'node' ? process.execPath : healthCommand, healthArgs, { env, stdio: 'ignore' })
    healthy = (await once(probe, 'exit'))[0] === 0
  }
  t.ok(healthy, `the HEALTHCHECK passes: ${output.slice(-500)}`)
  const ready = await fetch(`http://127.0.0.1:${env.PORT}/readyz`)
  t.equal(ready.status, 200)
  server.kill('SIGTERM')
  t.equal((await once(server, 'exit'))[0], 0, 'stops cleanly on SIGTERM')
})
