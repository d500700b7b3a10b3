import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'

// The typed client (clients/typescript) is generated from a copy of the OpenAPI document,
// committed beside it. This fails while that copy is behind the server's document: run
// `npm run generate` in clients/typescript (it rewrites openapi.json and src/schema.ts).

const copy = join(import.meta.dirname, '..', 'clients', 'typescript', 'openapi.json')

t.test('clients/typescript/openapi.json is the document the server generates now', async t => {
  // the same configuration as `npm run openapi` (bin/openapi.ts), which `npm run generate` runs
  const app = await buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: 'sqlite::memory:' }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  const current = JSON.parse(JSON.stringify(app.swagger())) as unknown
  const committed = JSON.parse(readFileSync(copy, 'utf8')) as unknown
  t.same(committed, current, 'clients/typescript/openapi.json is out of date: run `npm run generate` in clients/typescript (after `npm ci` there) and commit openapi.json and src/schema.ts')
  t.equal(JSON.stringify(committed), JSON.stringify(current), 'same keys in the same order (regenerate: cd clients/typescript && npm run generate)')
})
