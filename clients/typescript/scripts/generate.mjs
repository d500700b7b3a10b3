// `npm run generate`: the server's OpenAPI document, copied into openapi.json (through the
// repository root's `npm run openapi`, which builds the server and asks it for /docs/json's
// document), then the TypeScript types of every route, src/schema.ts, by openapi-typescript.
// Run it after any change to a route schema; test/client-package.test.ts at the root fails
// while openapi.json is behind the server, test/schema.test.ts here while src/schema.ts is.

import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = join(dirname(fileURLToPath(import.meta.url)), '..')
const root = join(here, '..', '..')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

execFileSync(npm, ['run', '-s', 'openapi', '--', join(here, 'openapi.json')], { cwd: root, stdio: 'inherit' })
execFileSync(process.execPath, [join(here, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), 'openapi.json', '-o', 'src/schema.ts'], { cwd: here, stdio: 'inherit' })
