import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

// npm 11 warns of dependencies whose install scripts package.json's `allowScripts` does not
// cover, and npm's documentation says such scripts are blocked by default: a fresh install
// would then have no SQLite driver (better-sqlite3 builds in its install script). Every one is
// decided in package.json: better-sqlite3 allowed, libsignal's (an echo) denied.

const root = join(import.meta.dirname, '..', '..')

t.test('every dependency with an install script is allowed or denied in package.json', async t => {
  let stdout: string
  try {
    ({ stdout } = await promisify(execFile)('npm', ['install-scripts', 'ls', '--json'], { cwd: root }))
  } catch (error) {
    // an npm from before install-script approvals has no such command, and runs every script
    const output = String((error as { stdout?: string }).stdout ?? '') + String((error as { stderr?: string }).stderr ?? '')
    if (/Unknown command|not a valid command|usage/i.test(output)) {
      t.pass('this npm has no install-scripts command, and runs every install script')
      return
    }
    throw error
  }
  const pending = (JSON.parse(stdout) as { allowScripts: Array<{ name: string }> }).allowScripts.map(entry => entry.name)
  t.same(pending, [], 'none left to review: `npm install-scripts approve|deny <pkg>`')
})
