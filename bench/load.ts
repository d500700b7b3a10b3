import { execFile, execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, type Dispatcher } from 'undici'

// Load generators: wrk (Debian's package) when it is installed, autocannon otherwise.
// Both take a list of prepared requests that the connections cycle through, so one
// scenario can spread its load over many users, tokens and conversations.

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT'
  path: string
  headers?: Record<string, string>
  body?: string
}

export interface LoadResult {
  requests: number
  rps: number
  /** latencies in milliseconds */
  p50: number
  p99: number
  max: number
  /** socket errors, timeouts and responses other than 2xx/3xx */
  errors: number
}

export type Tool = 'wrk' | 'autocannon'

export function availableTool (): Tool {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' })
    return 'wrk'
  } catch (error) {
    // wrk prints its version and exits 1; only a missing binary is ENOENT
    return (error as { code?: string }).code === 'ENOENT' ? 'autocannon' : 'wrk'
  }
}

export interface LoadOptions {
  tool: Tool
  url: string
  requests: HttpRequest[]
  connections: number
  seconds: number
  /** where wrk's Lua script is written */
  workDir: string
}

export async function runLoad (options: LoadOptions): Promise<LoadResult> {
  if (options.requests.length === 0) throw new Error('a load needs at least one request')
  return options.tool === 'wrk' ? await runWrk(options) : await runAutocannon(options)
}

// A Lua long string that cannot be closed by the text inside it.
function luaString (text: string): string {
  let level = 1
  while (text.includes(']' + '='.repeat(level) + ']')) level++
  const eq = '='.repeat(level)
  return `[${eq}[${text}]${eq}]`
}

function wrkScript (requests: HttpRequest[]): string {
  const rows = requests.map(r => {
    const headers = Object.entries({ ...r.body === undefined ? {} : { 'Content-Type': 'application/json' }, ...r.headers })
      .map(([k, v]) => `[ ${luaString(k)} ] = ${luaString(v)}`).join(', ')
    return `  { ${luaString(r.method)}, ${luaString(r.path)}, { ${headers} }, ${r.body === undefined ? 'nil' : luaString(r.body)} }`
  })
  return `local raw = {
${rows.join(',\n')}
}
local reqs, n, i = {}, 0, 0
function init (args)
  for _, r in ipairs(raw) do
    n = n + 1
    reqs[n] = wrk.format(r[1], r[2], r[3], r[4])
  end
  i = math.random(n) - 1
end
function request ()
  i = i % n + 1
  return reqs[i]
end
function done (summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p50":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`
}

let scriptCount = 0

async function runWrk (options: LoadOptions): Promise<LoadResult> {
  const script = join(options.workDir, `load-${++scriptCount}.lua`)
  writeFileSync(script, wrkScript(options.requests))
  // one generator thread: the server keeps the other core of a 2-core machine
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--timeout', '10s', '-s', script, options.url]
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('wrk', args, { maxBuffer: 16 * 1024 * 1024 }, (error, out, err) => {
      if (error !== null || err.includes(script)) reject(new Error(`wrk failed: ${err || error?.message}`))
      else resolve(out)
    })
  })
  const line = stdout.split('\n').find(l => l.startsWith('WRKJSON '))
  if (line === undefined) throw new Error(`wrk printed no summary (its script is ${script}):\n${stdout}`)
  const raw = JSON.parse(line.slice('WRKJSON '.length)) as { requests: number, duration_us: number, errors: number, p50: number, p99: number, max: number }
  return {
    requests: raw.requests,
    rps: raw.requests / (raw.duration_us / 1e6),
    p50: raw.p50 / 1000,
    p99: raw.p99 / 1000,
    max: raw.max / 1000,
    errors: raw.errors
  }
}

interface AutocannonResult {
  requests: { total: number, average: number }
  latency: { p50: number, p99: number, max: number }
  errors: number
  timeouts: number
  non2xx: number
  duration: number
}

async function runAutocannon (options: LoadOptions): Promise<LoadResult> {
  const autocannon = createRequire(import.meta.url)('autocannon') as (opts: object) => Promise<AutocannonResult>
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    requests: options.requests.map(r => ({
      method: r.method,
      path: r.path,
      headers: { ...r.body === undefined ? {} : { 'content-type': 'application/json' }, ...r.headers },
      ...r.body === undefined ? {} : { body: r.body }
    }))
  })
  return {
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.errors + result.timeouts + result.non2xx
  }
}

export interface Sample { status: number, ms: number, body: string }

/**
 * Sends `next()` at a fixed rate for `seconds` (an open loop: a slow answer does not slow
 * the sender down) and returns every answer with its latency. Given several URLs, request
 * i goes to the i-th in turn. A caller's `agent` keeps its connections from one call to
 * the next (and is left open); without one, each call opens its own.
 */
export async function fixedRate (
  url: string | string[], ratePerSecond: number, seconds: number, next: (i: number) => HttpRequest,
  onSent?: (i: number, at: number) => void, shared?: Agent
): Promise<Sample[]> {
  const agent = shared ?? connectionPool(64)
  const targets = (typeof url === 'string' ? [url] : url).map(u => new URL(u))
  const total = Math.round(ratePerSecond * seconds)
  const pending: Array<Promise<Sample>> = []
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / ratePerSecond
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    const req = next(i)
    const at = performance.now()
    onSent?.(i, at)
    pending.push(send(agent, targets[i % targets.length] as URL, req).then(({ status, body }) => ({ status, body, ms: performance.now() - at })))
  }
  const samples = await Promise.all(pending)
  if (shared === undefined) await agent.close()
  return samples
}

/**
 * One request through undici (kept-alive connections, pipelining 1). The load generators
 * share the server's two cores: node:http's client cost 210 µs of CPU a request in the
 * sender and left garbage whose scavenges paused the recipients' timestamps by 5 to 9 ms,
 * which the delivery latencies then counted as the server's.
 */
export async function send (dispatcher: Dispatcher, target: URL, req: HttpRequest): Promise<{ status: number, body: string }> {
  const res = await dispatcher.request({
    origin: target.origin,
    method: req.method,
    path: req.path,
    headers: { ...req.body === undefined ? {} : { 'content-type': 'application/json' }, ...req.headers },
    body: req.body
  })
  return { status: res.statusCode, body: await res.body.text() }
}

/** One request of a closed loop's round: its answer, or an error for a status other than 2xx. */
export type Step = (req: HttpRequest) => Promise<string>

/**
 * A closed loop: `connections` workers, each running `round` again and again for `seconds`
 * (a round already started is finished). For loads in which a request needs an earlier
 * answer (an ack names the send it acknowledges), which the prepared lists of wrk and
 * autocannon cannot express. Every request of a round is counted and timed; a round stops
 * at its first failed request. The client is undici, whose CPU the server's two cores share.
 */
export async function closedLoop (url: string, connections: number, seconds: number, round: (step: Step, worker: number) => Promise<void>): Promise<LoadResult> {
  const agent = connectionPool(connections)
  const target = new URL(url)
  const latencies: number[] = []
  let errors = 0
  const step: Step = async req => {
    const at = performance.now()
    const { status, body } = await send(agent, target, req)
    latencies.push(performance.now() - at)
    if (status < 200 || status > 299) throw new Error(`${req.method} ${req.path}: ${status} ${body.slice(0, 200)}`)
    return body
  }
  const start = performance.now()
  const end = start + seconds * 1000
  await Promise.all(Array.from({ length: connections }, async (_, worker) => {
    while (performance.now() < end) {
      try {
        await round(step, worker)
      } catch {
        errors++
      }
    }
  }))
  const elapsed = (performance.now() - start) / 1000
  await agent.close()
  latencies.sort((a, b) => a - b)
  return { requests: latencies.length, rps: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN, errors }
}

/** Connections for `fixedRate` and `send`: up to `connections` to each server, reused. */
export function connectionPool (connections: number): Agent {
  return new Agent({ connections, pipelining: 1 })
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}
