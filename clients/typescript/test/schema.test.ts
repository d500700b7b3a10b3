import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'

// src/schema.ts must be what openapi-typescript makes of the committed openapi.json (the root's
// test/client-package.test.ts checks that openapi.json is the server's document now).

const here = join(import.meta.dirname, '..', '..')

test('src/schema.ts is generated from openapi.json as it is', () => {
  const check = spawnSync(process.execPath, [join(here, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), 'openapi.json', '-o', 'src/schema.ts', '--check'], { cwd: here, encoding: 'utf8' })
  assert.equal(check.status, 0, `src/schema.ts is out of date: run \`npm run generate\` in clients/typescript\n${check.stdout}${check.stderr}`)
})
