import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { ADMIN_TOKEN, build } from './helper.js'

// The live OpenAPI document (admin API included) and the AsyncAPI one of GET /ws through
// Redocly's linter (the CLI, a dev dependency) with its recommended rules and our
// redocly.yaml, as a client author would run it.

const run = promisify(execFile)
const ROOT = new URL('../', import.meta.url).pathname
const REDOCLY = join(ROOT, 'node_modules/@redocly/cli/bin/cli.js')

interface Problem { ruleId: string, severity: 'error' | 'warn', message: string, location: Array<{ pointer: string }> }
interface Report { totals: { errors: number, warnings: number, ignored: number }, problems: Problem[] }

async function lint (t: Test, document: unknown): Promise<Report> {
  const dir = mkdtempSync(join(tmpdir(), 'openapi-lint-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'document.json')
  writeFileSync(file, JSON.stringify(document))
  // the CLI exits 1 when there are errors: its JSON report says which
  const { stdout } = await run(process.execPath, [REDOCLY, 'lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json'], {
    cwd: dir, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' }, maxBuffer: 64 * 1024 * 1024
  }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }))
  return JSON.parse(stdout) as Report
}

const where = (p: Problem): string => `${p.ruleId} ${p.location[0]?.pointer ?? ''}`

async function liveDocument (t: Test): Promise<any> {
  const app = await build(t, { ADMIN_TOKEN })
  const res = await app.inject({ url: '/docs/json' })
  t.equal(res.statusCode, 200)
  return res.json()
}

t.test('redocly lint: no error, and only the warnings redocly.yaml explains', async t => {
  const config = readFileSync(join(ROOT, 'redocly.yaml'), 'utf8')
  t.match(config, /^extends:\n {2}- recommended$/m, 'the recommended rules')
  t.notMatch(config, /^rules:/m, 'none of them turned off or relaxed')
  const document = await liveDocument(t)
  t.ok(document.paths['/admin/api/stats'], 'the admin API is in the document')
  const report = await lint(t, document)
  t.same(report.problems.filter(p => p.severity === 'error').map(p => `${where(p)}: ${p.message}`), [], 'no error')
  t.same(report.problems.filter(p => p.severity === 'warn').map(where).sort(), [
    'info-license #/info',
    'operation-4xx-response #/paths/~1healthz/get/responses',
    'operation-4xx-response #/paths/~1readyz/get/responses'
  ], 'only the warnings redocly.yaml explains')
  t.same(report.totals, { errors: 0, warnings: 3, ignored: 0 }, 'nothing ignored either')
})

t.test('the linter catches a route without security, an empty servers list and a clash of operation ids', async t => {
  const document = await liveDocument(t)
  delete document.paths['/login'].post.security
  delete document.servers
  document.paths['/register'].post.operationId = 'login'
  const report = await lint(t, document)
  const errors = report.problems.filter(p => p.severity === 'error').map(where)
  t.ok(errors.includes('security-defined #/paths/~1login/post'), 'a public route must say security: []')
  t.ok(errors.some(e => e.startsWith('no-empty-servers ')), 'servers must be set')
  t.ok(errors.some(e => e.startsWith('operation-operationId-unique ')), 'operation ids are unique')
})

t.test('the AsyncAPI document of GET /ws lints clean: no error, no warning', async t => {
  const app = await build(t)
  const res = await app.inject({ url: '/docs/asyncapi.json' })
  t.equal(res.statusCode, 200)
  const report = await lint(t, res.json())
  t.same(report.problems.map(p => `${where(p)}: ${p.message}`), [], 'no problem')
  t.same(report.totals, { errors: 0, warnings: 0, ignored: 0 })

  // and the linter does check it: a broken copy fails
  const broken = res.json()
  broken.operations.sendEvents.action = 'push'
  broken.channels.events.messages.message.$ref = '#/components/messages/nothing'
  const errors = (await lint(t, broken)).problems.filter(p => p.severity === 'error').map(where)
  t.ok(errors.includes('struct #/operations/sendEvents/action'), 'a wrong action is an error')
  t.ok(errors.some(e => e.startsWith('no-unresolved-refs ')), 'a dangling $ref is an error')
})
