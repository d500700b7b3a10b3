import { readFileSync } from 'node:fs'
import t from 'tap'
import { build, postgresUrl } from './helper.js'

// The Grafana dashboard and the Prometheus configuration in deploy/ against what the server
// exports: a renamed metric must not leave a panel silently empty.

const dashboard = JSON.parse(readFileSync(new URL('../deploy/grafana/cryptachat.json', import.meta.url), 'utf8'))
const POSTGRES_ONLY = /^cryptachat_db_pool_/

t.test('every metric the dashboard queries is one the server exports', async t => {
  const app = await build(t, { METRICS: 'on' })
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const families = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name = '', type]) =>
    type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]))
  const exprs: string[] = dashboard.panels.flatMap((panel: { targets: Array<{ expr: string }> }) => panel.targets.map(target => target.expr))
  const queried = new Set(exprs.flatMap(expr => expr.match(/\b(cryptachat|nodejs|process)_[a-z0-9_]+/g) ?? []))
  t.ok(queried.size >= 20, `${queried.size} metrics queried`)
  for (const name of queried) {
    if (POSTGRES_ONLY.test(name) && postgresUrl === undefined) continue
    t.ok(families.has(name), `${name} is exported`)
  }
  for (const family of text.matchAll(/^# TYPE (cryptachat_\S+) /gm)) {
    t.ok(exprs.some(expr => expr.includes(family[1] ?? '')), `${family[1]} has a panel`)
  }
})

t.test('Prometheus scrapes the port compose gives /metrics, which compose publishes nowhere', async t => {
  const compose = readFileSync(new URL('../compose.yaml', import.meta.url), 'utf8')
  const prometheus = readFileSync(new URL('../deploy/prometheus.yml', import.meta.url), 'utf8')
  const port = /METRICS_PORT: (\d+)/.exec(compose)?.[1]
  t.equal(port, '9464')
  t.match(prometheus, new RegExp(`port: ${port}\\b`))
  t.notMatch(compose, new RegExp(`"[0-9.:]*${port}:`), 'no ports: entry maps the metrics port to the host')
  for (const service of ['server', 'server-pg', 'server-a', 'server-b']) t.match(prometheus, new RegExp(`\\b${service}\\b`), `${service} is a target`)
})
