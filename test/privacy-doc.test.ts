import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { build } from './helper.js'

// docs/privacy.md promises what the server keeps and for how long. This file keeps the
// promise honest in two ways: every table and column of the migrated database is described
// there (a column cannot land without saying what it holds), and every test the document
// cites as proof exists, under that name, in that file.

const doc = readFileSync(new URL('../docs/privacy.md', import.meta.url), 'utf8')

/** The text of the section `### <table>` up to the next heading. */
function section (table: string): string | undefined {
  const start = doc.indexOf(`\n### \`${table}\`\n`)
  if (start < 0) return undefined
  const rest = doc.slice(start + 1)
  const end = rest.slice(4).search(/\n#{2,3} /)
  return end < 0 ? rest : rest.slice(0, end + 4)
}

t.test('docs/privacy.md describes every table and every column of the database', async t => {
  const app = await build(t)
  const tables = (await app.db.introspection.getTables()).filter(table => !table.name.startsWith('kysely_'))
  t.ok(tables.length >= 9, 'the schema was read')
  for (const table of tables) {
    const text = section(table.name)
    if (text === undefined) {
      t.fail(`docs/privacy.md has a section "### \`${table.name}\`"`)
      continue
    }
    for (const column of table.columns) t.ok(text.includes(`\`${column.name}\``), `${table.name}.${column.name} is described`)
  }
})

t.test('every test docs/privacy.md cites exists under that name', async t => {
  // citations read: `test/some/file.test.ts`: "the test's name"
  const citations = [...doc.matchAll(/`(test\/[\w./-]+\.test\.ts)`: "([^"]+)"/g)]
  t.ok(citations.length >= 20, `the document cites its proofs (${citations.length})`)
  for (const [, file = '', name = ''] of citations) {
    const url = new URL(`../${file}`, import.meta.url)
    if (!existsSync(url)) {
      t.fail(`${file} exists`)
      continue
    }
    const source = readFileSync(url, 'utf8')
    const quoted = [`'${name.replaceAll("'", "\\'")}'`, `"${name}"`, `\`${name}\``]
    t.ok(quoted.some(text => source.includes(text)), `${file} has a test named "${name}"`)
  }
})
