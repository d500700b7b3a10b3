import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import type { DatabaseSettings } from '../db/connect.js'
import { createSchema, dropSchema } from '../db/migrate.js'
import { availableTool, closedLoop, fixedRate, percentile, runLoad, type HttpRequest, type LoadResult, type Step } from './load.js'
import { startNode, type Served } from './processes.js'
import { summarize } from './profile-top.js'
import { CONTACTS, DEVICES, checkClaims, realistic, seedRealistic } from './realistic.js'
import { hasWebSocket, wsDelivery, wsSockets, type DeliveryResult, type DeliveryRoute } from './realtime.js'
import { markdown, machine, type Report, type Row } from './report.js'
import { Api, PASSWORD, blob, inBatches, seedStoredMessages, type BenchUser } from './seed.js'

// `npm run bench [-- --db postgres] [--instances N] [--scenario <name>] [--smoke] [--seconds N] [--rate N] [--sockets N] [--connections N] [--profile] [--keep] [--server <script>]`
// Builds nothing itself (the npm script compiles first); starts the real server and the
// hello-world ceiling as processes, seeds, drives each scenario and writes the results.
// With --instances N (PostgreSQL and Redis), N servers share one schema and the Redis hub,
// and the delivery scenarios compare sends through the sockets' own instance with sends
// through another.

const here = dirname(fileURLToPath(import.meta.url)) // dist/bench
const root = resolve(here, '../..')

const { values: args } = parseArgs({
  options: {
    db: { type: 'string', default: 'sqlite' },
    instances: { type: 'string', default: '1' },
    rate: { type: 'string' },
    sockets: { type: 'string' },
    connections: { type: 'string' },
    scenario: { type: 'string', multiple: true },
    smoke: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    server: { type: 'string', default: join(root, 'dist/server.js') },
    out: { type: 'string', default: join(root, 'bench/results') }
  }
})

const MAIN = ['get_key', 'get_contacts', 'get_messages_poll', 'sync_poll', 'get_messages_100', 'send_message', 'send_envelopes', 'ack_envelopes', 'mixed', 'login_storm', 'ws_delivery', 'ws_delivery_cross', 'ws_sockets'] as const
const GROWTH = ['growth_10k', 'growth_1m'] as const
// the headline of issue 16: many idle sockets, steady sends between contacts, acks
const REALISTIC = 'realistic'
const ALL: readonly string[] = [REALISTIC, ...MAIN, ...GROWTH]
const CROSS = ['ws_delivery', 'ws_delivery_cross']
// the delivery scenarios' targets hold at 1000 messages/s; another rate is for a look only
// (up here: usage() names it, and a bad option calls usage() before the rest is set)
const TARGET_RATE = 1000
// the musts of issue 16 (the third performance round): the ratios to the ceiling
const SMALL_READ = 1 / 4
const TARGET_SOCKETS = 10_000

if (args.db !== 'sqlite' && args.db !== 'postgres') usage(`--db must be sqlite or postgres, not ${args.db}`)
const instances = Number(args.instances)
if (!Number.isInteger(instances) || instances < 1) usage(`--instances must be a whole number from 1, not ${args.instances}`)
// several instances are one service only through a shared database and the Redis hub
const redisUrl = instances > 1 ? process.env.REDIS_URL || 'redis://127.0.0.1:6379' : undefined
if (instances > 1 && args.db !== 'postgres') usage(`--instances ${instances} needs --db postgres: instances share one database, and SQLite is one process's file`)
if (redisUrl !== undefined && !/^rediss?:\/\/.+$/.test(redisUrl)) usage('--instances needs REDIS_URL to be a redis:// or rediss:// URL (unset, it is redis://127.0.0.1:6379)')
for (const name of args.scenario ?? []) if (!ALL.includes(name)) usage(`unknown scenario ${name}`)
if (instances > 1 && args.scenario?.includes(REALISTIC) === true) usage(`${REALISTIC} runs on one instance: leave out --instances`)
if (instances === 1 && args.scenario?.includes('ws_delivery_cross') === true) usage('ws_delivery_cross needs --instances 2 or more (and --db postgres, and Redis)')
// one instance: everything but the cross-instance scenario; several: the delivery across
// instances beside the same on one (the other scenarios on instance 1 when asked for)
const defaults = instances === 1 ? ALL.filter(name => name !== 'ws_delivery_cross') : CROSS
const selected = new Set(args.scenario ?? defaults)
// the cross-instance must compares with the delivery on one instance: both, side by side
if (selected.has('ws_delivery_cross')) selected.add('ws_delivery')
const partial = selected.size !== defaults.length || defaults.some(name => !selected.has(name))
const smoke = args.smoke
const seconds = Number(args.seconds ?? (smoke ? 1 : 5))
if (!(seconds > 0)) usage('--seconds must be a positive number')
const wsRate = Number(args.rate ?? (smoke ? 100 : TARGET_RATE))
if (!Number.isInteger(wsRate) || wsRate < 1) usage(`--rate must be a whole number of messages a second, not ${args.rate}`)
const judged = !smoke && wsRate === TARGET_RATE
// the HTTP scenarios' (and the ceiling's) connections: the targets hold at 32; fewer show a request's latency alone
const TARGET_CONNECTIONS = 32
const CONNECTIONS = Number(args.connections ?? TARGET_CONNECTIONS)
if (!Number.isInteger(CONNECTIONS) || CONNECTIONS < 1) usage(`--connections must be a whole number from 1, not ${args.connections}`)
// realistic: its own length (20 s, 2 in a smoke run) unless --seconds says; its target holds at 10,000 sockets
const realisticSeconds = Number(args.seconds ?? (smoke ? 2 : 20))
const realisticSockets = Number(args.sockets ?? (smoke ? 200 : TARGET_SOCKETS))
if (!Number.isInteger(realisticSockets) || realisticSockets % DEVICES !== 0 || realisticSockets / DEVICES <= CONTACTS) {
  usage(`--sockets must be a whole multiple of ${DEVICES} (each user holds ${DEVICES} devices) above ${DEVICES * CONTACTS}, not ${args.sockets}`)
}
const realisticJudged = judged && realisticSockets === TARGET_SOCKETS
const dbKind: 'sqlite' | 'postgres' = args.db === 'postgres' ? 'postgres' : 'sqlite'
// PostgreSQL on this machine is reached as a co-located deployment would reach it: by its
// Unix socket when there is one (over loopback TCP each query's write cost about twice
// as much CPU), else over TCP; DATABASE_URL=postgres://... chooses another.
const LOCAL_SOCKET_DIR = '/var/run/postgresql'
const postgresUrl = process.env.DATABASE_URL?.startsWith('postgres') === true
  ? process.env.DATABASE_URL
  : existsSync(join(LOCAL_SOCKET_DIR, '.s.PGSQL.5432'))
    ? `postgres://postgres@localhost/test?host=${LOCAL_SOCKET_DIR}`
    : 'postgres://postgres@127.0.0.1:5432/test'

// the cross-instance run gives each delivery route recipients of its own: twice the users
const sizes = { users: (smoke ? 8 : 32) * (selected.has('ws_delivery_cross') ? 2 : 1), history: 150, sockets: smoke ? 100 : 10_000, wsRate }

function usage (problem: string): never {
  process.stderr.write(`${problem}
usage: npm run bench -- [--db sqlite|postgres] [--instances N] [--scenario <name>]... [--smoke] [--seconds N] [--rate N] [--sockets N] [--connections N] [--profile] [--keep] [--server <script>]
  scenarios: ${ALL.join(', ')}
  --rate N: messages a second in the delivery scenarios and ${REALISTIC} (default ${TARGET_RATE}, 100 with --smoke; their targets are judged at ${TARGET_RATE} only)
  --sockets N: sockets held in ${REALISTIC} (default ${TARGET_SOCKETS}, 200 with --smoke: ${DEVICES} devices of N/${DEVICES} users); it runs
    20 s (2 with --smoke) unless --seconds says, and needs a soft open-files limit (ulimit -n) above N + 2000
  --connections N: connections of the HTTP scenarios and their ceiling (default ${TARGET_CONNECTIONS}; their targets are judged at ${TARGET_CONNECTIONS} only)
  --keep: leave the work directory (the servers' logs with each request's responseTime) for a look
  --instances N (default 1): N servers on one PostgreSQL schema with the Redis hub (REDIS_URL,
    default redis://127.0.0.1:6379); needs --db postgres; runs ${CROSS.join(' and ')} unless --scenario says otherwise
`)
  process.exit(2)
}

const hub = redisUrl === undefined ? undefined : { redis: await redisVersion(redisUrl), at: where(redisUrl) }
const work = mkdtempSync(join(tmpdir(), 'cryptachat-bench-'))
const tool = availableTool()
const cleanups: Array<() => Promise<void>> = []
const rows: Row[] = []
const skipped: Report['skipped'] = []
const load0 = loadavg()

function log (text: string): void {
  process.stderr.write(text + '\n')
}

/** A fresh database: a temporary SQLite file, or a new PostgreSQL schema dropped at the end. */
async function freshDatabase (name: string): Promise<{ env: Record<string, string>, settings: DatabaseSettings }> {
  if (dbKind === 'sqlite') {
    const file = join(work, `${name}.db`)
    return { env: { DATABASE_URL: `sqlite:${file}` }, settings: { kind: 'sqlite', file } }
  }
  const schema = `bench_${name.replace(/[^a-z0-9]/g, '_')}_${randomBytes(4).toString('hex')}`
  await createSchema(postgresUrl, schema)
  cleanups.push(async () => { await dropSchema(postgresUrl, schema) })
  return { env: { DATABASE_URL: postgresUrl, DATABASE_SCHEMA: schema }, settings: { kind: 'postgres', url: postgresUrl, schema } }
}

/** Redis's version, or a usage error when it does not answer: --instances needs it. */
async function redisVersion (url: string): Promise<string> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  let cause: Error | undefined
  redis.on('error', (error: Error) => { cause ??= error }) // the connection's own error says more than the failed call
  try {
    await redis.connect()
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown'
  } catch (error) {
    usage(`--instances ${instances} needs Redis for the hub, and ${where(url)} did not answer (${(cause ?? error as Error).message}); start redis-server or set REDIS_URL`)
  } finally {
    redis.disconnect()
  }
}

/** host:port of a URL: no user name or password in logs and reports. */
function where (url: string): string {
  return new URL(url).host
}

// one secret for every server: a token issued by one instance is honoured by the others
const jwtSecret = randomBytes(48).toString('base64')

let profiles = 0
async function startServer (name: string, dbEnv: Record<string, string>, extra: { nodeArgs?: string[], env?: Record<string, string>, profile?: boolean } = {}): Promise<Served> {
  const nodeArgs = [...args.profile && extra.profile !== false ? ['--cpu-prof', `--cpu-prof-dir=${join(args.out, 'profiles')}`, `--cpu-prof-name=${dbKind}-${name}-${++profiles}.cpuprofile`] : [], ...extra.nodeArgs ?? []]
  const server = await startNode(`server (${name})`, args.server, {
    // as an operator would run it, rate limits lifted; LOG_LEVEL stays the server default
    NODE_ENV: 'production',
    JWT_SECRET: jwtSecret,
    DATA_DIR: join(work, `data-${name}`),
    RATE_LIMIT: 'off',
    // METRICS=on npm run bench: the cost of the metrics (docs/metrics.md)
    ...(process.env.METRICS === undefined ? {} : { METRICS: process.env.METRICS }),
    // WS_PING_INTERVAL=1s npm run bench: what holding sockets costs, with more pings
    ...(process.env.WS_PING_INTERVAL === undefined ? {} : { WS_PING_INTERVAL: process.env.WS_PING_INTERVAL }),
    // BENCH_NODE_OPTIONS=... npm run bench: Node options for the server alone (a GC setting, a preload)
    ...(process.env.BENCH_NODE_OPTIONS === undefined ? {} : { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS }),
    ...dbEnv,
    ...extra.env
  }, join(work, `server-${name}.log`), { probe: '/readyz', nodeArgs })
  cleanups.push(async () => { await server.stop() })
  return server
}

let hello: Served | undefined
const ceilingRuns: number[] = []

/** Runs a load and measures the CPU time the target process spent on it. */
async function drive (target: Served, requests: HttpRequest[], connections: number, secs: number): Promise<LoadResult & { cpuPerRequest: number }> {
  const cpu0 = target.cpu()
  const result = await runLoad({ tool, url: target.url, requests, connections, seconds: secs, workDir: work })
  return { ...result, cpuPerRequest: (target.cpu() - cpu0) / result.requests }
}

/** The ceiling, measured again right before each scenario: on a shared machine it drifts. */
async function ceiling (): Promise<{ rps: number, cpuPerRequest: number }> {
  if (hello === undefined) throw new Error('the hello-world is not running')
  const result = await drive(hello, [{ method: 'GET', path: '/' }], CONNECTIONS, Math.min(2, seconds))
  ceilingRuns.push(result.rps)
  return result
}

type Measured = LoadResult & { ceiling: number, cpuPerRequest: number, ceilingCpuPerRequest: number }

/** As `measure`, for a closed loop of rounds (load.ts): a request that needs an earlier answer. */
async function measureRounds (target: Served, round: (step: Step, worker: number) => Promise<void>, connections = CONNECTIONS): Promise<Measured> {
  if (!smoke) await closedLoop(target.url, connections, 1, round) // warm-up, discarded
  const before = await ceiling()
  const cpu0 = target.cpu()
  const result = await closedLoop(target.url, connections, seconds, round)
  return { ...result, cpuPerRequest: (target.cpu() - cpu0) / result.requests, ceiling: before.rps, ceilingCpuPerRequest: before.cpuPerRequest }
}

async function measure (target: Served, requests: HttpRequest[], connections = CONNECTIONS): Promise<Measured> {
  if (!smoke) await runLoad({ tool, url: target.url, requests, connections, seconds: 1, workDir: work }) // warm-up, discarded
  const before = await ceiling()
  const result = await drive(target, requests, connections, seconds)
  return { ...result, ceiling: before.rps, ceilingCpuPerRequest: before.cpuPerRequest }
}

interface Target { ratio?: number, p99?: number, text?: string }
const targets = new Map<Row, Target>()

function row (scenario: string, result: LoadResult & Partial<Measured>, must: Target = {}, note = '', load = `${CONNECTIONS} conn`): Row {
  const ratio = result.ceiling === undefined ? null : result.rps / result.ceiling
  const text = must.text ?? [must.ratio === undefined ? '' : `1/${1 / must.ratio}`, must.p99 === undefined ? '' : `p99 < ${must.p99} ms`].filter(Boolean).join(', ')
  const cpu = result.cpuPerRequest === undefined ? null : { us: result.cpuPerRequest * 1e6, ceilingUs: (result.ceilingCpuPerRequest ?? NaN) * 1e6 }
  const r: Row = { scenario, load, rps: result.rps, ceiling: result.ceiling ?? null, ratio, cpu, p50: result.p50, p99: result.p99, max: result.max, errors: result.errors, must: text, met: null, note }
  rows.push(r)
  targets.set(r, must)
  log(`  ${scenario}: ${result.rps.toFixed(0)} req/s (${ratio === null ? 'no ratio' : `1/${(1 / ratio).toFixed(1)} of ceiling ${result.ceiling?.toFixed(0) ?? ''}`}), p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, max ${result.max.toFixed(1)} ms, ${result.errors} errors`)
  return r
}

/** Each target checked (not in a smoke run). */
function judge (): void {
  for (const r of rows) {
    const must = targets.get(r)
    const checks: boolean[] = []
    if (must?.ratio !== undefined && r.ratio !== null) checks.push(r.ratio >= must.ratio)
    if (must?.p99 !== undefined) checks.push(r.p99 < must.p99)
    if (checks.length > 0) r.met = checks.every(Boolean)
    // growth: the 1M figures within 10% of the 10k ones (as ratios: the machine drifts)
    const base = r.scenario.endsWith('@1m') ? rows.find(x => x.scenario === r.scenario.replace('@1m', '@10k')) : undefined
    if (base?.ratio != null && r.ratio !== null) {
      r.must = 'within 10% of @10k'
      r.met = r.ratio >= 0.9 * base.ratio
    }
    if (smoke || (CONNECTIONS !== TARGET_CONNECTIONS && r.load === `${CONNECTIONS} conn`)) r.met = null
  }
}

function skip (scenario: string, reason: string): void {
  skipped.push({ scenario, reason })
  log(`  ${scenario}: skipped: ${reason}`)
}

const auth = (user: BenchUser): Record<string, string> => ({ authorization: `Bearer ${user.token}` })
const messagesPath = (other: string, sinceId: number, limit?: number): string =>
  `/get_messages?username=${other}&since_id=${sinceId}${limit === undefined ? '' : `&limit=${limit}`}`

/** The current sync cursor of a user, or undefined when the server has no /sync. */
async function syncCursor (api: Api, user: BenchUser): Promise<string | undefined> {
  let path = '/sync'
  for (let page = 0; page < 1000; page++) {
    const res = await api.call('GET', path, user.token)
    if (res.status === 404) return undefined
    if (res.status !== 200 || res.json?.next === undefined) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.json).slice(0, 200)}`)
    if (res.json.has_more !== true) return String(res.json.next)
    path = `/sync?since=${encodeURIComponent(res.json.next)}`
  }
  throw new Error('sync did not catch up after 1000 pages')
}

async function syncPolls (api: Api, users: BenchUser[]): Promise<HttpRequest[] | undefined> {
  const requests: HttpRequest[] = []
  for (const user of users) {
    const cursor = await syncCursor(api, user)
    if (cursor === undefined) return undefined
    requests.push({ method: 'GET', path: `/sync?since=${encodeURIComponent(cursor)}`, headers: auth(user) })
  }
  return requests
}

/** The polling and history scenarios over one conversation; shared by the main and growth runs. */
async function readScenarios (api: Api, server: Served, a: BenchUser, b: BenchUser, suffix: string, only: (name: string) => boolean, stored = ''): Promise<void> {
  const page = (await api.expect(200, 'GET', messagesPath(b.name, 0, 1000), a.token)).messages as Array<{ id: number }>
  const lastId = page.at(-1)?.id ?? 0
  if (only('get_messages_poll')) {
    row(`get_messages_poll${suffix}`, await measure(server, [
      { method: 'GET', path: messagesPath(b.name, lastId), headers: auth(a) },
      { method: 'GET', path: messagesPath(a.name, lastId), headers: auth(b) }
    ]), { ratio: SMALL_READ }, `nothing new${stored}`)
  }
  if (only('sync_poll')) {
    const polls = await syncPolls(api, [a, b])
    if (polls === undefined) skip(`sync_poll${suffix}`, 'server has no /sync')
    else row(`sync_poll${suffix}`, await measure(server, polls), { ratio: SMALL_READ }, `nothing new${stored}`)
  }
  if (only('get_messages_100')) {
    const got = (await api.expect(200, 'GET', messagesPath(b.name, 0), a.token)).messages.length
    row(`get_messages_100${suffix}`, await measure(server, [
      { method: 'GET', path: messagesPath(b.name, 0), headers: auth(a) },
      { method: 'GET', path: messagesPath(a.name, 0), headers: auth(b) }
    ]), { ratio: 1 / 12 }, `${got} messages a reply${stored}`)
  }
}

async function mainRun (): Promise<void> {
  const { env } = await freshDatabase('main')
  // the instances' own namespace in Redis: another service (or test) on the same Redis has
  // users with the same ids, whose hints would otherwise wake these sockets and theirs ours
  const hubEnv: Record<string, string> = redisUrl === undefined ? {} : { REDIS_URL: redisUrl, REDIS_PREFIX: `cryptachat-bench-${randomBytes(4).toString('hex')}:` }
  const server = await startServer('main', { ...env, ...hubEnv })
  // the others one after the other: each migrates the shared schema as it starts
  const others: Served[] = []
  for (let k = 2; k <= instances; k++) others.push(await startServer(`main-${k}`, { ...env, ...hubEnv }))
  if (others.length > 0) log(`${instances} instances on one schema, hub in Redis at ${where(redisUrl ?? '')}: ${[server, ...others].map(s => s.url).join(', ')}`)
  const api = new Api(server.url)
  log(`seeding ${sizes.users} users, keys, contacts and ${sizes.history} messages through the API`)
  const users = await inBatches(Array.from({ length: sizes.users }, (_, i) => `user${i}`), 4, async name => await api.register(name))
  const [u0, u1] = users as [BenchUser, BenchUser, ...BenchUser[]]
  for (const user of users) await api.expect(200, 'POST', '/upload_key', user.token, { public_key: blob(32) })
  const pairs: Array<[BenchUser, BenchUser]> = []
  for (let i = 0; i + 1 < users.length; i += 2) pairs.push([users[i] as BenchUser, users[i + 1] as BenchUser])
  for (const [a, b] of pairs) await api.befriend(a, b)
  for (const user of users.slice(2)) await api.befriend(u0, user)
  for (let i = 0; i < sizes.history; i++) await api.send(i % 2 === 0 ? u0 : u1, i % 2 === 0 ? u1 : u0)
  const senders = pairs.slice(1).flatMap(([a, b]) => [[a, b], [b, a]] as Array<[BenchUser, BenchUser]>)
  const sendRequests: HttpRequest[] = senders.map(([from, to]) => ({
    method: 'POST', path: '/send_message', headers: auth(from), body: JSON.stringify({ recipient_username: to.name, sender_blob: blob(), recipient_blob: blob() })
  }))
  const keyRequests: HttpRequest[] = users.map((user, i) => ({ method: 'GET', path: `/get_key?username=${users[(i + 1) % users.length]?.name ?? ''}`, headers: auth(user) }))
  const contactRequests: HttpRequest[] = users.map(user => ({ method: 'GET', path: '/get_contacts', headers: auth(user) }))

  if (selected.has('get_key')) row('get_key', await measure(server, keyRequests), { ratio: SMALL_READ })
  if (selected.has('get_contacts')) row('get_contacts', await measure(server, contactRequests), { ratio: SMALL_READ }, `${users.length - 1} contacts for user0, 1 or 2 for the others`)
  await readScenarios(api, server, u0, u1, '', name => selected.has(name))
  if (selected.has('send_message')) {
    row('send_message', await measure(server, sendRequests), { ratio: 1 / 6, p99: 15 }, `${senders.length} senders, 2 × 160-byte blobs`)
  }
  if (selected.has('send_envelopes')) await sendEnvelopes(api, server, 8)
  if (selected.has('ack_envelopes')) await ackEnvelopes(api, server, 8)
  if (selected.has('mixed')) {
    const lastId = (await api.expect(200, 'GET', messagesPath(u1.name, 0, 1000), u0.token)).messages.at(-1)?.id ?? 0
    const polls: HttpRequest[] = [
      { method: 'GET', path: messagesPath(u1.name, lastId), headers: auth(u0) },
      { method: 'GET', path: messagesPath(u0.name, lastId), headers: auth(u1) }
    ]
    const syncs = await syncPolls(api, [u0, u1]) ?? polls
    // per 10 requests: 2 sends, 4 polls, 2 syncs, 1 key lookup, 1 contact list
    const mix: HttpRequest[] = []
    for (let i = 0; i < 10 * senders.length; i++) {
      const slot = i % 10
      const pick = (list: HttpRequest[]): HttpRequest => list[i % list.length] as HttpRequest
      mix.push(slot < 2 ? pick(sendRequests) : slot < 6 ? pick(polls) : slot < 8 ? pick(syncs) : slot === 8 ? pick(keyRequests) : pick(contactRequests))
    }
    row('mixed', await measure(server, mix), { text: '' }, `20% send, 40% get_messages poll, 20% ${syncs === polls ? 'get_messages poll (no /sync)' : 'sync poll'}, 10% get_key, 10% get_contacts`)
  }
  if (selected.has('login_storm')) await loginStorm(server, users, keyRequests)
  if (selected.has('ws_delivery') || selected.has('ws_sockets')) {
    if (!await hasWebSocket(server, u0.token)) {
      for (const name of ['ws_delivery', 'ws_delivery_cross', 'ws_sockets']) if (selected.has(name)) skip(name, 'server has no /ws')
    } else {
      if (selected.has('ws_delivery')) await delivery(server, others, pairs.slice(1))
      if (selected.has('ws_sockets')) {
        const r = await wsSockets(server, users.map(u => u.token), sizes.sockets)
        rows.push({ scenario: 'ws_sockets', load: `${sizes.sockets} sockets`, rps: NaN, ceiling: null, ratio: null, cpu: null, p50: NaN, p99: NaN, max: NaN, errors: r.target - r.held, must: '10000 held', met: smoke ? null : r.held >= 10_000, note: `${r.held} held, ${(r.bytesPerSocket / 1024).toFixed(1)} KiB RSS each (RSS ${(r.rssBefore / 2 ** 20).toFixed(0)} → ${(r.rssAfter / 2 ** 20).toFixed(0)} MiB), opened in ${r.openSeconds.toFixed(1)} s` })
        log(`  ws_sockets: ${r.held} held, ${(r.bytesPerSocket / 1024).toFixed(1)} KiB each`)
      }
    }
  }
  for (const other of others) await other.stop()
  await server.stop()
}

/**
 * ws_delivery: the recipients' sockets on `server`, sends written to it. With
 * ws_delivery_cross, the same beside it with sends written to the `others` (in turn), each
 * route to recipients of its own, the two taking turns (see wsDelivery).
 */
async function delivery (server: Served, others: Served[], pairs: Array<[BenchUser, BenchUser]>): Promise<void> {
  const cross = selected.has('ws_delivery_cross')
  const half = Math.floor(pairs.length / 2)
  const routes: DeliveryRoute[] = cross
    ? [{ via: [server], pairs: pairs.slice(0, half) }, { via: others, pairs: pairs.slice(half, 2 * half) }]
    : [{ via: [server], pairs }]
  const before = await hubStates([server, ...others])
  // 3 s of warm-up at the same rate: the first second or two of this open-loop load run with
  // the machine saturated (the sender's first sends; on PostgreSQL its backends too), which a
  // warm-up of 1 s left in the measured window (bench/HISTORY.md, 2026-12-03, late night)
  const [local, remote] = await wsDelivery(server, routes, sizes.wsRate, seconds, smoke ? 0 : 3, [server, ...others])
  if (local === undefined) throw new Error('wsDelivery gave no result')
  // a degraded hub still delivers, by polling every second: say so beside the numbers
  const after = await hubStates([server, ...others])
  const hubNote = `hub ${before.join('/')} before, ${after.join('/')} after (/readyz)`
  const what = "from writing send_message to the event on the recipient's socket"
  // the CPU of each instance per message: where the hub's work lands
  const cpu = (r: DeliveryResult): string => `; CPU per message ${r.cpuUs.map((us, k) => `${us.toFixed(0)} µs${others.length === 0 ? '' : ` on instance ${k + 1}`}`).join(', ')}`
  const onOne = others.length === 0 ? cpu(local) : `; sockets and sends on instance 1 of ${instances}, hub in Redis${cpu(local)}; ${hubNote}`
  rows.push({ scenario: 'ws_delivery', load: `${sizes.wsRate} msg/s`, rps: local.delivered / seconds, ceiling: null, ratio: null, cpu: null, p50: local.p50, p99: local.p99, max: local.max, errors: local.errors, must: 'p99 < 5 ms at 1000 msg/s', met: judged ? local.p99 < 5 && local.errors === 0 : null, note: `${local.delivered}/${local.sent} delivered; ${what}${onOne}` })
  log(`  ws_delivery: ${local.delivered}/${local.sent} delivered, p50 ${local.p50.toFixed(2)} ms, p99 ${local.p99.toFixed(2)} ms, max ${local.max.toFixed(1)} ms`)
  if (remote === undefined) return
  const all = remote.delivered === remote.sent && remote.errors === 0
  // a missing message fails at any load; the latencies compare only while one instance keeps
  // up: past a p50 of the must's own 10 ms it queues, and two queues say nothing of the hub
  const queued = local.p50 > 10
  const met = !judged ? null : !all ? false : queued ? null : remote.p99 <= local.p99 + 10
  const verdict = judged && all && queued ? `; p99 not judged: ws_delivery's p50 of ${local.p50.toFixed(0)} ms says the server queued (the machine's load)` : ''
  const through = others.length === 1 ? 'instance 2' : `instances 2 to ${instances} in turn`
  rows.push({ scenario: 'ws_delivery_cross', load: `${sizes.wsRate} msg/s`, rps: remote.delivered / seconds, ceiling: null, ratio: null, cpu: null, p50: remote.p50, p99: remote.p99, max: remote.max, errors: remote.errors, must: 'at 1000 msg/s all delivered, p99 ≤ ws_delivery p99 + 10 ms', met, note: `${remote.delivered}/${remote.sent} delivered; sockets on instance 1, sends through ${through}; in 1 s turns with ws_delivery, ${half} recipients each${cpu(remote)}${verdict}` })
  log(`  ws_delivery_cross: ${remote.delivered}/${remote.sent} delivered, p50 ${remote.p50.toFixed(2)} ms, p99 ${remote.p99.toFixed(2)} ms, max ${remote.max.toFixed(1)} ms`)
}

type Registered = BenchUser & { deviceId: number, registrationId: number }

/**
 * `count` pairs of contacts on names of their own (`prefix`s…, `prefix`r…; registering
 * device 1 replaces its tokens), each sender with 2 registered devices, each recipient with 3.
 */
async function devicePairs (api: Api, prefix: string, base: number, count: number): Promise<Array<{ from: BenchUser, to: BenchUser, senders: [Registered, Registered], recipients: Registered[] }>> {
  const pairs = await inBatches(Array.from({ length: count }, (_, i) => i), 4, async i =>
    [await api.register(`${prefix}s${i}`), await api.register(`${prefix}r${i}`)] as [BenchUser, BenchUser])
  for (const [a, b] of pairs) await api.befriend(a, b)
  const out = []
  for (const [i, [from, to]] of pairs.entries()) {
    const at = base + i * 10
    const senders: [Registered, Registered] = [await api.device(from.name, at + 1, 1), await api.device(from.name, at + 2)]
    const recipients = [await api.device(to.name, at + 5, 1), await api.device(to.name, at + 6), await api.device(to.name, at + 7)]
    out.push({ from, to, senders, recipients })
  }
  return out
}

const envelopeTo = (d: Registered): unknown => ({ type: 1, destinationDeviceId: d.deviceId, destinationRegistrationId: d.registrationId, content: blob() })

/**
 * Per-device messages: a send is two PUT /v1/messages, one envelope per device of the
 * recipient, and the copy for the sender's other device.
 */
async function sendEnvelopes (api: Api, server: Served, count: number): Promise<void> {
  const pairs = await devicePairs(api, 'env', 1000, count)
  const requests: HttpRequest[] = []
  for (const { from, to, senders, recipients } of pairs) {
    const headers = { authorization: `Bearer ${senders[0].token}` }
    requests.push({ method: 'PUT', path: `/v1/messages/${to.name}`, headers, body: JSON.stringify({ messages: recipients.map(envelopeTo) }) })
    requests.push({ method: 'PUT', path: `/v1/messages/${from.name}`, headers, body: JSON.stringify({ messages: [envelopeTo(senders[1])] }) })
  }
  row('send_envelopes', await measure(server, requests), { text: '' }, `${pairs.length} senders with 2 devices to recipients with 3; half the requests 3 envelopes to the recipient, half the sync copy to the sender's other device; 120-byte contents`)
}

/**
 * Per-device messages as Signal clients use them: a send, then each of the recipient's three
 * devices acknowledges its envelope (POST /ack_messages {envelope_ids}), which deletes it and
 * tells the sender's two devices. A round is those four requests, in turn, on one connection.
 */
async function ackEnvelopes (api: Api, server: Served, count: number): Promise<void> {
  const rounds = (await devicePairs(api, 'ack', 2000, count)).map(({ to, senders, recipients }) => ({
    send: { method: 'PUT', path: `/v1/messages/${to.name}`, headers: { authorization: `Bearer ${senders[0].token}` }, body: JSON.stringify({ messages: recipients.map(envelopeTo) }) } satisfies HttpRequest,
    acks: recipients.map(d => d.token)
  }))
  const round = async (step: Step, worker: number): Promise<void> => {
    const { send, acks } = rounds[worker % rounds.length] as { send: HttpRequest, acks: string[] }
    const { id } = JSON.parse(await step(send)) as { id: number }
    for (const token of acks) await step({ method: 'POST', path: '/ack_messages', headers: { authorization: `Bearer ${token}` }, body: `{"envelope_ids":[${id}]}` })
  }
  row('ack_envelopes', await measureRounds(server, round), { text: '' }, `${rounds.length} senders with 2 devices to recipients with 3; rounds of a PUT of 3 envelopes and each recipient device's ack; load by undici, not ${tool}`)
}

/** Each server's delivery hub as its /readyz tells it: local, connected or degraded. */
async function hubStates (servers: Served[]): Promise<string[]> {
  return await Promise.all(servers.map(async server => {
    const body = await (await fetch(`${server.url}/readyz`)).json() as { hub?: unknown }
    return typeof body.hub === 'string' ? body.hub : 'unknown'
  }))
}

/** Logins saturate (wrk) while a fixed-rate prober measures get_key beside them. */
async function loginStorm (server: Served, users: BenchUser[], keyRequests: HttpRequest[]): Promise<void> {
  const logins: HttpRequest[] = users.map(user => ({ method: 'POST', path: '/login', body: JSON.stringify({ username: user.name, password: PASSWORD }) }))
  const probeRate = 100
  const [storm, probes] = await Promise.all([
    runLoad({ tool, url: server.url, requests: logins, connections: 16, seconds, workDir: work }),
    fixedRate(server.url, probeRate, seconds, i => keyRequests[i % keyRequests.length] as HttpRequest)
  ])
  row('login', storm, { text: '' }, 'bounded by Argon2id by design', '16 conn')
  const latencies = probes.map(p => p.ms).sort((a, b) => a - b)
  const probe: LoadResult = { requests: probes.length, rps: probeRate, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN, errors: probes.filter(p => p.status !== 200).length }
  row('login_storm_get_key', probe, { p99: 20 }, 'get_key while logins saturate', `${probeRate} req/s`)
}

/** The soft limit of open files of this process (its children inherit it), from /proc (Linux). */
function openFilesLimit (): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find(l => l.startsWith('Max open files'))
    const soft = line?.split(/\s{2,}/)[1]
    return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
  } catch {
    return Infinity
  }
}

/**
 * realistic: seeded straight into a fresh database (bench/realistic.ts), the server started
 * with the event-loop-delay preload (bench only), the sockets in a process of their own.
 */
async function realisticRun (): Promise<void> {
  // the server and the sockets' process each hold one descriptor per socket, and the
  // server one more for each of the sender's and the acks' connections (up to 1280)
  const limit = openFilesLimit()
  if (limit < realisticSockets + 2000) {
    skip(REALISTIC, `${realisticSockets} sockets need an open-files limit above ${realisticSockets + 2000}, and ulimit -n is ${limit}: raise it (ulimit -n ${realisticSockets + 5000}) or pass --sockets`)
    return
  }
  const users = realisticSockets / DEVICES
  const { env, settings } = await freshDatabase('realistic')
  const started = performance.now()
  const world = await seedRealistic(settings, users)
  log(`realistic: seeded ${users} users with ${DEVICES} devices and ${CONTACTS} contacts each (${world.contactPairs} pairs) in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const eldFile = join(work, 'event-loop-delay.json')
  // --profile: the measured window's profile, written by the preload (not --cpu-prof's whole life)
  const profileFile = args.profile ? join(args.out, 'profiles', `${dbKind}-${REALISTIC}-${realisticSockets}.cpuprofile`) : undefined
  if (profileFile !== undefined) mkdirSync(dirname(profileFile), { recursive: true })
  // BENCH_SQL_PROFILE=1: each SQLite statement's time in the measured window (bench/event-loop-delay.ts)
  const sqlFile = process.env.BENCH_SQL_PROFILE === '1' && dbKind === 'sqlite' ? join(work, 'realistic-sql.txt') : undefined
  const server = await startServer(REALISTIC, env, {
    nodeArgs: ['--import', pathToFileURL(join(here, 'event-loop-delay.js')).href],
    env: { BENCH_ELD_FILE: eldFile, ...profileFile === undefined ? {} : { BENCH_PROFILE_FILE: profileFile }, ...sqlFile === undefined ? {} : { BENCH_SQL_FILE: sqlFile } },
    profile: false
  })
  await checkClaims(server, jwtSecret, world)
  log(`realistic: ${realisticSockets} sockets, then ${wsRate} sends/s for ${realisticSeconds} s`)
  const r = await realistic(server, world, jwtSecret, { rate: wsRate, seconds: realisticSeconds, warmupSeconds: smoke ? 0 : 2, idleSeconds: smoke ? 0.5 : 3, eldFile, ...profileFile === undefined ? {} : { profileFile } })
  await server.stop()
  const must = dbKind === 'sqlite' ? 10 : 20
  const missing = r.delivery.expected - r.delivery.delivered
  const badAcks = Object.entries(r.acks).filter(([status]) => status !== '200').reduce((n, [, count]) => n + count, 0)
  const errors = r.sends.failed + missing + r.sockets.failed + badAcks + r.closedEarly
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0)
  const pct = (share: number): string => `${(100 * share).toFixed(0)}%`
  const gc = r.eventLoop?.gc === undefined ? '' : `; GC paused it ${r.eventLoop.gc.count} times, ${r.eventLoop.gc.totalMs.toFixed(0)} ms in all, longest ${r.eventLoop.gc.maxMs.toFixed(1)} ms (${r.eventLoop.gc.major} major, longest ${r.eventLoop.gc.majorMaxMs.toFixed(1)} ms)`
  const eld = r.eventLoop === null ? 'event-loop delay not measured' : `server event-loop delay p50 ${r.eventLoop.p50.toFixed(2)}, p99 ${r.eventLoop.p99.toFixed(2)}, max ${r.eventLoop.max.toFixed(1)} ms${gc}`
  const note = [
    `${r.sockets.held}/${r.sockets.target} sockets held (${users} users × ${DEVICES} devices, ${CONTACTS} contacts each), opened in ${r.sockets.openSeconds.toFixed(1)} s`,
    `${r.sends.ok}/${r.sends.planned} sends between random contacts answered 201 (${r.sends.perSecond.toFixed(0)}/s from the first write to the last answer; written in ${r.sends.written.toFixed(1)} s)`,
    `${r.delivery.delivered}/${r.delivery.expected} frames on recipients' sockets, latency from writing send_message to each frame; to every device of the recipient p99 ${r.delivery.expected === 0 ? '-' : r.allDevices.p99.toFixed(2)} ms`,
    `acks (POST /ack_messages by device 1): ${JSON.stringify(r.acks)}`,
    `server CPU ${r.cpuUs.server.toFixed(0)} µs a send (${pct(r.cores.server)} of a core; ${pct(r.cores.serverIdle)} holding the sockets with nothing sent), RSS ${mib(r.rss.before)} → ${mib(r.rss.after)} MiB (max ${mib(r.rss.max)}), ${eld}`,
    `the load's own CPU: sockets' process ${r.cpuUs.sockets.toFixed(0)} µs a send (${pct(r.cores.sockets)} of a core), sender ${r.cpuUs.sender.toFixed(0)} µs (${pct(r.cores.sender)}) on the same ${cpus().length} cores`
  ].join('; ')
  rows.push({
    scenario: REALISTIC,
    load: `${wsRate} sends/s, ${realisticSockets} sockets`,
    rps: r.sends.perSecond,
    ceiling: null,
    ratio: null,
    cpu: { us: r.cpuUs.server, ceilingUs: NaN },
    p50: r.delivery.p50,
    p99: r.delivery.p99,
    max: r.delivery.max,
    errors,
    must: `p99 < ${must} ms at 1000 sends/s, 10000 sockets`,
    met: realisticJudged ? r.delivery.p99 < must && errors === 0 : null,
    note,
    details: { ...r }
  })
  if (sqlFile !== undefined && existsSync(sqlFile)) log(`realistic: SQLite statements in the measured window (wall time, by statement):\n${readFileSync(sqlFile, 'utf8').split('\n').slice(0, 20).join('\n')}`)
  if (profileFile !== undefined && existsSync(profileFile)) log(`realistic: the server's profile of the measured window is ${profileFile}; its top:\n${summarize(JSON.parse(readFileSync(profileFile, 'utf8')), 20)}`)
  log(`  realistic: ${r.sends.perSecond.toFixed(0)} sends/s, delivery p50 ${r.delivery.p50.toFixed(2)} ms, p99 ${r.delivery.p99.toFixed(2)} ms, max ${r.delivery.max.toFixed(1)} ms, ${errors} errors\n  ${note}`)
}

async function growthRun (name: string, total: number): Promise<void> {
  const { env, settings } = await freshDatabase(name)
  const started = performance.now()
  const history = await seedStoredMessages(settings, total)
  log(`seeded ${total} messages straight into the database in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const server = await startServer(name, env)
  const api = new Api(server.url)
  const [a, b] = await Promise.all(history.pair.map(async n => ({ name: n, token: await api.login(n) })))
  await readScenarios(api, server, a as BenchUser, b as BenchUser, `@${name.replace('growth_', '')}`, n => n !== 'sync_poll' || !smoke, `; ${total} messages stored`)
  await server.stop()
}

async function main (): Promise<void> {
  log(`bench: ${dbKind}${hub === undefined ? '' : `, ${instances} instances, hub in Redis ${hub.redis} at ${hub.at}`}, load by ${tool}${tool === 'autocannon' ? ' (wrk not installed)' : ''}, ${seconds} s per scenario, work dir ${work}`)
  const started = await startNode('hello-world', join(root, 'dist/bench/hello.js'), {}, join(work, 'hello.log'))
  hello = started
  cleanups.push(async () => { await started.stop() })
  if (!smoke) await drive(started, [{ method: 'GET', path: '/' }], CONNECTIONS, 1) // warm-up
  if (MAIN.some(name => selected.has(name))) await mainRun()
  if (selected.has(REALISTIC)) await realisticRun()
  if (selected.has('growth_10k')) await growthRun('growth_10k', smoke ? 1000 : 10_000)
  if (selected.has('growth_1m')) await growthRun('growth_1m', smoke ? 5000 : 1_000_000)
  judge()

  const report: Report = {
    date: new Date().toISOString(),
    db: dbKind,
    ...(dbKind === 'postgres' ? { postgres: new URL(postgresUrl).searchParams.get('host') ?? new URL(postgresUrl).host } : {}),
    tool,
    ...(hub === undefined ? {} : { instances, hub }),
    smoke,
    seconds,
    machine: { ...machine(load0), loadAfter: loadavg().map(l => Math.round(l * 100) / 100) },
    ceiling: { runs: ceilingRuns },
    rows,
    skipped
  }
  const table = markdown(report)
  process.stdout.write('\n' + table)
  mkdirSync(args.out, { recursive: true })
  // the headline alone gets files of its own, beside the full run's
  const onlyRealistic = selected.size === 1 && selected.has(REALISTIC)
  const suffix = smoke ? '-smoke' : onlyRealistic ? (realisticJudged ? '-realistic' : '-realistic-partial') : partial || wsRate !== TARGET_RATE || CONNECTIONS !== TARGET_CONNECTIONS ? '-partial' : ''
  const base = join(args.out, `${dbKind}${instances > 1 ? `-${instances}-instances` : ''}${suffix}`)
  writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n')
  writeFileSync(`${base}.md`, table)
  log(`\nwrote ${base}.json and ${base}.md`)
  const failed = rows.filter(r => r.errors > 0 && r.scenario !== 'ws_sockets')
  if (smoke && failed.length > 0) throw new Error(`smoke run saw errors in: ${failed.map(r => r.scenario).join(', ')}`)
}

try {
  await main()
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(error => { log(`cleanup: ${String(error)}`) })
  if (args.keep) log(`kept ${work} (the servers' logs, the SQLite files)`)
  else rmSync(work, { recursive: true, force: true })
}
