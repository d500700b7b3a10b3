import { readFileSync } from 'node:fs'
import t from 'tap'
import { EnvSchema } from '../config.js'

// docs/configuration.md is the one list of settings: every variable config.ts reads is in
// its table, and the table names no variable that config.ts does not read.

const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')
const rows = doc.split('\n').filter(line => line.startsWith('| `'))
const documented = new Set(rows.flatMap(row => [...(row.split(' | ')[0] ?? '').matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map(m => m[1] ?? '')))

t.test('every setting config.ts reads is documented, and only those', async t => {
  const settings = Object.keys(EnvSchema.properties)
  for (const name of settings) t.ok(documented.has(name), `${name} is in docs/configuration.md`)
  for (const name of documented) t.ok(settings.includes(name), `${name} in docs/configuration.md is a setting`)
  t.ok(settings.length > 40)
})
