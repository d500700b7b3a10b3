import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { observeWalHolds, poolOf } from '../../db/connect.js'
import { observeGroupCommits } from '../../db/perf/group-commit.js'

// Prometheus metrics (METRICS=on; docs/metrics.md lists every one). Off, `fastify.metrics`
// is a set of no-ops and nothing is measured. On, each app has a registry of its own (tests
// build many apps in one process), served at /metrics: on a listener of its own with
// METRICS_PORT, bound to METRICS_HOST (default HOST), else on the main port, to anyone.
// No label holds a username, an id or a raw URL: routes are named by their pattern.

/** The route label of a request that matched no route (a 404): one label for all of them. */
export const UNMATCHED = 'unmatched'

/** Which limit refused a request with a 429 (docs/metrics.md). */
export type LimitName = 'address' | 'admin-failures' | 'prekeys' | 'connections-account' | 'connections-address' |
  'send-sender' | 'send-pair' | 'login-failures' | 'login-failures-account' | 'session-password-failures' | 'key-changes' | 'lookups'

export type HintKind = 'news' | 'disconnect'

/** Where an event sent on a socket came from: handed over by the request that committed it on this instance, or read back from the database. */
export type EventSource = 'pushed' | 'read'

/** Counts of delivery-hub hints: published by this instance, received from others through Redis. */
export interface HintObserver {
  published: (kind: HintKind, users: number) => void
  received: (kind: HintKind) => void
}

export interface Metrics {
  readonly enabled: boolean
  /** Counts a 429 of this request's route under `limit`. */
  refused: (request: FastifyRequest, limit: LimitName) => void
  /** The hub's counters; undefined when off, so that the hub does not even call them. */
  readonly hints: HintObserver | undefined
  /** Counts events sent on sockets by source; undefined when off. */
  readonly socketEvents: ((source: EventSource, count: number) => void) | undefined
  /** Long-polls waiting now, read at each scrape. */
  watchLongPolls: (read: () => number) => void
  /** Where the METRICS_PORT listener listens (undefined without one). */
  readonly address: { host: string, port: number } | undefined
}

const OFF: Metrics = { enabled: false, refused () {}, hints: undefined, socketEvents: undefined, watchLongPolls () {}, address: undefined }

// a long-poll waits up to 30 s; the first buckets are where plain requests fall
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export default fp(async function metricsPlugin (fastify) {
  const { metrics: settings } = fastify.config
  if (!settings.enabled) {
    fastify.decorate('metrics', OFF)
    return
  }
  const registry = new Registry()
  const registers = [registry]
  // process_* and nodejs_*: CPU, memory, heap, handles, GC, and event-loop delay (p50, p90, p99
  // from perf_hooks.monitorEventLoopDelay, reset at each scrape)
  collectDefaultMetrics({ register: registry })

  const labelNames = ['method', 'route', 'status_code'] as const
  const requests = new Counter({ name: 'cryptachat_http_requests_total', help: 'HTTP requests answered, by method, route pattern and status code.', labelNames, registers })
  const duration = new Histogram({ name: 'cryptachat_http_request_duration_seconds', help: 'Time from receiving a request to sending its answer, by method, route pattern and status code.', labelNames, buckets: LATENCY_BUCKETS, registers })
  fastify.addHook('onResponse', (request, reply, done) => {
    const labels = { method: request.method, route: request.routeOptions.url ?? UNMATCHED, status_code: reply.statusCode }
    requests.inc(labels)
    duration.observe(labels, reply.elapsedTime / 1000)
    done()
  })

  const refusals = new Counter({ name: 'cryptachat_rate_limit_refusals_total', help: 'Requests refused with a 429, by route pattern and the limit that refused them.', labelNames: ['route', 'limit'], registers })
  const published = new Counter({ name: 'cryptachat_hub_hints_published_total', help: 'Delivery hints published by this instance (one per user told), by kind.', labelNames: ['kind'], registers })
  const received = new Counter({ name: 'cryptachat_hub_hints_received_total', help: 'Delivery hints received from other instances through Redis, by kind.', labelNames: ['kind'], registers })
  const batches = new Histogram({ name: 'cryptachat_group_commit_batch_writes', help: 'Writes committed together in one SQLite transaction (group commit).', buckets: [1, 2, 4, 8, 16, 32, 64], registers })
  observeGroupCommits(fastify.db, writes => { batches.observe(writes) })
  const walHolds = new Histogram({ name: 'cryptachat_sqlite_wal_hold_seconds', help: 'How long the writes were held while the last pages of the SQLite WAL were copied, so that it could start over (under a steady load, each time it reaches 8,192 pages).', buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1], registers })
  observeWalHolds(fastify.db, seconds => { walHolds.observe(seconds) })

  let longPolls = (): number => 0
  gauge(registry, 'cryptachat_long_polls_waiting', 'Long-polls (GET /sync with a timeout) waiting for an event now.', () => longPolls())
  gauge(registry, 'cryptachat_websockets_open', 'WebSockets (GET /ws) open now.', () => fastify.websocketServer.clients.size)
  // an upgraded request never ends as an HTTP answer (no onResponse): its sockets are counted here
  const opened = new Counter({ name: 'cryptachat_websockets_opened_total', help: 'WebSockets (GET /ws) accepted since the start.', registers })
  fastify.websocketServer.on('connection', () => { opened.inc() })
  const socketEvents = new Counter({ name: 'cryptachat_websocket_events_total', help: 'Events sent on WebSockets, by source: pushed (handed over by the request that committed them on this instance) or read (read back from the database).', labelNames: ['source'], registers })
  gauge(registry, 'cryptachat_password_hashes_running', 'Argon2id hashes and verifications running now (at most PASSWORD_HASH_CONCURRENCY).', () => fastify.passwords.load().running)
  gauge(registry, 'cryptachat_password_hashes_waiting', 'Argon2id hashes and verifications queued for a free slot.', () => fastify.passwords.load().waiting)
  const pool = poolOf(fastify.db)
  if (pool !== undefined) {
    gauge(registry, 'cryptachat_db_pool_connections', 'PostgreSQL connections open in the pool.', () => pool.totalCount)
    gauge(registry, 'cryptachat_db_pool_idle_connections', 'PostgreSQL connections open and idle.', () => pool.idleCount)
    gauge(registry, 'cryptachat_db_pool_waiting_queries', 'Queries waiting for a free PostgreSQL connection.', () => pool.waitingCount)
    gauge(registry, 'cryptachat_db_pool_max_connections', 'The pool\'s size limit.', () => pool.options.max ?? 10)
  }

  const scrape = async (): Promise<string> => await registry.metrics()
  let server: Server | undefined
  if (settings.port === undefined) {
    // X-HIDDEN: not part of the API the OpenAPI document describes (docs/metrics.md)
    fastify.get('/metrics', { schema: { tags: ['X-HIDDEN'] }, logLevel: 'warn' }, async (_request, reply) => {
      reply.type(registry.contentType)
      return await scrape()
    })
  } else {
    server = await listen(settings.host, settings.port, registry.contentType, scrape)
    fastify.addHook('onClose', async () => {
      server?.closeAllConnections()
      await new Promise(resolve => server?.close(resolve))
    })
  }
  const bound = server?.address()
  fastify.decorate('metrics', {
    enabled: true,
    refused (request: FastifyRequest, limit: LimitName) {
      refusals.inc({ route: request.routeOptions.url ?? UNMATCHED, limit })
    },
    hints: {
      published (kind: HintKind, users: number) { published.inc({ kind }, users) },
      received (kind: HintKind) { received.inc({ kind }) }
    },
    socketEvents (source: EventSource, count: number) { if (count > 0) socketEvents.inc({ source }, count) },
    watchLongPolls (read: () => number) { longPolls = read },
    address: typeof bound === 'object' && bound !== null ? { host: bound.address, port: bound.port } : undefined
  } satisfies Metrics)
  fastify.addHook('onClose', async () => { registry.clear() })
}, { name: 'metrics', dependencies: ['config', 'db', 'websocket'] })

/** A gauge whose value is read when Prometheus scrapes: nothing to keep up between scrapes. */
function gauge (registry: Registry, name: string, help: string, read: () => number): void {
  // eslint-disable-next-line no-new
  new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
}

/** The metrics listener: GET /metrics, anything else a 404; no Fastify, no logs. */
async function listen (host: string, port: number, contentType: string, scrape: () => Promise<string>): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: GET /metrics\n')
      return
    }
    scrape().then(body => {
      response.writeHead(200, { 'content-type': contentType }).end(body)
    }, () => {
      response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n')
    })
  })
  server.listen(port, host)
  await once(server, 'listening')
  return server
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}
