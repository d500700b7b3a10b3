import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'

// Signal's client library is AGPL-3.0: the tests use it as a real client, the server must
// never import it, and the production install must leave it out (test/image checks the
// install itself). Read from the files, tracked or new, so that an import added anywhere
// outside test/ fails here before it is committed.

const root = join(import.meta.dirname, '..', '..')

const LIBRARY = '@signalapp/'

t.test('no source outside test/ names @signalapp', async t => {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
    .split('\0')
    .filter(file => /\.(ts|js|mjs|cjs|mts|cts)$/.test(file) && !file.startsWith('test/'))
  t.ok(files.includes('server.ts') && files.some(file => file.startsWith('routes/')), `the sources are listed (${files.length} files)`)
  const importing = files.filter(file => { try { return readFileSync(join(root, file), 'utf8').includes(LIBRARY) } catch { return false } })
  t.same(importing, [], 'no file outside test/ mentions it')
})

t.test('it is a dev dependency pinned to one exact version, and the lockfile marks it dev-only', async t => {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const name = `${LIBRARY}libsignal-client`
  t.notOk(name in (manifest.dependencies ?? {}), 'not a production dependency')
  t.notOk(name in (manifest.optionalDependencies ?? {}) || name in (manifest.peerDependencies ?? {}), 'nor an optional or peer one')
  t.match(manifest.devDependencies?.[name], /^\d+\.\d+\.\d+$/, 'a dev dependency, pinned exactly (its API changes between versions)')
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  const locked = lock.packages?.[`node_modules/${name}`]
  t.equal(locked?.version, manifest.devDependencies?.[name], 'the lockfile has the pinned version')
  t.equal(locked?.dev, true, 'the lockfile marks it dev-only, so `npm prune --omit=dev` removes it')
  t.equal(locked?.license, 'AGPL-3.0-only')
})
