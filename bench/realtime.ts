import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectionPool, fixedRate, percentile, type HttpRequest } from './load.js'
import type { Served } from './processes.js'
import { blob, type BenchUser } from './seed.js'

// The real-time scenarios, against GET /ws (token in ?token=, events pushed as JSON;
// a message event has type 'message' and the message id).

// The client of the `ws` package, typed by hand for what is used here.
interface ClientSocket {
  readyState: number
  once: ((event: 'open' | 'close', listener: () => void) => void) &
  ((event: 'error', listener: (error: Error) => void) => void) &
  ((event: 'unexpected-response', listener: (request: unknown, response: { statusCode?: number }) => void) => void)
  on: (event: 'message', listener: (data: Buffer) => void) => void
  off: (event: 'message', listener: (data: Buffer) => void) => void
  close: () => void
  terminate: () => void
}
const WebSocket = createRequire(import.meta.url)('ws') as { new (url: string): ClientSocket, OPEN: number, CLOSED: number }

class UpgradeRefused extends Error {
  constructor (readonly status: number) { super(`/ws answered ${status}`) }
}

/** A client socket to /ws with `token`, from the cursor `since` (or replaying the whole stream). */
function connect (server: Served, token: string, since?: string): ClientSocket {
  return new WebSocket(`${server.url.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}${since === undefined ? '' : `&since=${since}`}`)
}

async function open (server: Served, token: string, since?: string): Promise<ClientSocket> {
  const ws = connect(server, token, since)
  await opened(ws)
  return ws
}

async function opened (ws: ClientSocket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => { reject(new UpgradeRefused(res.statusCode ?? 0)) })
  })
}

/**
 * A socket opened without a cursor, once it has replayed its whole stream. Its frames may
 * come with the upgrade's answer, before `open` is seen: the listener is there from the start.
 */
async function openReplayed (server: Served, token: string): Promise<{ ws: ClientSocket, cursor: string }> {
  const ws = connect(server, token)
  const ready = replayed(ws)
  await opened(ws)
  return { ws, cursor: await ready }
}

/** Resolves at the socket's `ready` frame (the replay of its stream is over) with its cursor. */
async function replayed (ws: ClientSocket, timeoutMs = 60_000): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('no ready frame: the replay did not finish')) }, timeoutMs)
    const onMessage = (data: Buffer): void => {
      let frame: { type?: unknown, cursor?: unknown }
      try { frame = JSON.parse(data.toString()) } catch { return }
      if (frame.type !== 'ready') return
      clearTimeout(timer)
      ws.off('message', onMessage)
      resolve(String(frame.cursor))
    }
    ws.on('message', onMessage)
  })
}

/** false when the server answers the upgrade to /ws with 404, i.e. it has no WebSocket route. */
export async function hasWebSocket (server: Served, token: string): Promise<boolean> {
  try {
    (await open(server, token)).close()
    return true
  } catch (error) {
    if (error instanceof UpgradeRefused && error.status === 404) return false
    throw error
  }
}

export interface DeliveryResult {
  sent: number
  delivered: number
  p50: number
  p99: number
  max: number
  errors: number
  /** CPU time of each watched process during this route's turns, per message sent, in µs */
  cpuUs: number[]
}

/** One way for a message to reach the sockets: written to `via` (in turn), from and to `pairs`. */
export interface DeliveryRoute {
  via: Served[]
  /** [sender, recipient]; each recipient holds a socket on the server that `wsDelivery` is given */
  pairs: Array<[BenchUser, BenchUser]>
}

/**
 * Each recipient holds a socket on `server`; senders post send_message at a fixed total
 * rate, and the latency is from writing the request to the recipient's socket receiving
 * the event. Several routes (say: sends written to the sockets' own instance, and to
 * another one) take turns in rounds of about a second, ABBA, so that a shared machine's
 * drifting load falls on each alike; each route has recipients of its own, so that one
 * route's pushes never bring another's messages along. One result per route, with the
 * CPU time that each of the `watched` processes spent in its turns.
 */
export async function wsDelivery (
  server: Served, routes: DeliveryRoute[], ratePerSecond: number, seconds: number, warmupSeconds = 0, watched: Served[] = [server]
): Promise<DeliveryResult[]> {
  const arrivals = new Map<number, number>() // message id -> time received
  // a socket opened without a cursor first replays the whole stream (the scenarios before
  // this one sent thousands of messages): measure live delivery, after each `ready` frame
  const recipients = routes.flatMap(route => route.pairs.map(([, recipient]) => recipient))
  const sockets = await Promise.all(recipients.map(async recipient => (await openReplayed(server, recipient.token)).ws))
  for (const ws of sockets) {
    ws.on('message', (data: Buffer) => {
      const at = performance.now()
      let event: { type?: unknown, id?: unknown, message?: { id?: unknown }, data?: { id?: unknown } }
      try { event = JSON.parse(data.toString()) } catch { return }
      const id = [event.id, event.message?.id, event.data?.id].find(x => typeof x === 'number')
      if (event.type === 'message' && typeof id === 'number' && !arrivals.has(id)) arrivals.set(id, at)
    })
  }
  const plans = routes.map(({ via, pairs }) => {
    const bodies = pairs.map(([, recipient]) => JSON.stringify({ recipient_username: recipient.name, sender_blob: blob(), recipient_blob: blob() }))
    const sendAt = (i: number): HttpRequest => {
      const k = i % pairs.length
      return { method: 'POST', path: '/send_message', headers: { authorization: `Bearer ${pairs[k]?.[0].token ?? ''}` }, body: bodies[k] }
    }
    return { urls: via.map(s => s.url), sendAt, sent: 0, failed: 0, writtenAt: new Map<number, number>() /* message id -> time written */, cpu: watched.map(() => 0) }
  })
  const agent = connectionPool(64)
  try {
    // as for the other scenarios, a warm-up at the same rate first, not counted
    if (warmupSeconds > 0) for (const plan of plans) await fixedRate(plan.urls, ratePerSecond, warmupSeconds, plan.sendAt, undefined, agent)
    const rounds = plans.length === 1 ? 1 : Math.max(1, Math.round(seconds))
    for (let round = 0; round < rounds; round++) {
      for (const plan of round % 2 === 0 ? plans : [...plans].reverse()) {
        const written: number[] = []
        const cpu0 = watched.map(p => p.cpu())
        const samples = await fixedRate(plan.urls, ratePerSecond, seconds / rounds, plan.sendAt, (i, at) => { written[i] = at }, agent)
        watched.forEach((p, k) => { plan.cpu[k] = (plan.cpu[k] ?? 0) + p.cpu() - (cpu0[k] ?? 0) })
        samples.forEach((sample, i) => {
          plan.sent++
          if (sample.status === 201) plan.writtenAt.set(JSON.parse(sample.body).id, written[i] ?? NaN)
          else plan.failed++
        })
      }
    }
  } finally {
    await agent.close()
  }
  const deadline = Date.now() + 5000
  // arrivals also holds ids replayed on connect: wait for these very messages, not a count
  const waiting = (): boolean => plans.some(plan => [...plan.writtenAt.keys()].some(id => !arrivals.has(id)))
  while (waiting() && Date.now() < deadline) await sleep(5)
  for (const ws of sockets) ws.close()
  return plans.map(plan => {
    const latencies: number[] = []
    for (const [id, start] of plan.writtenAt) {
      const at = arrivals.get(id)
      if (at !== undefined) latencies.push(at - start)
    }
    latencies.sort((a, b) => a - b)
    return {
      sent: plan.sent,
      delivered: latencies.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? NaN,
      errors: plan.failed + (plan.writtenAt.size - latencies.length),
      cpuUs: plan.cpu.map(seconds => seconds / plan.sent * 1e6)
    }
  })
}

export interface SocketsResult { target: number, held: number, bytesPerSocket: number, rssBefore: number, rssAfter: number, openSeconds: number }

/** Opens up to `target` authenticated sockets (tokens reused: several sockets per user are allowed). */
export async function wsSockets (server: Served, tokens: string[], target: number): Promise<SocketsResult> {
  // each socket resumes from its user's current cursor, as a reconnecting client does:
  // opened without one, every socket would first replay the user's whole stream
  const cursors = new Map<string, string>()
  for (const token of new Set(tokens)) {
    const { ws, cursor } = await openReplayed(server, token)
    cursors.set(token, cursor)
    ws.close()
  }
  const rssBefore = server.rss()
  const sockets: ClientSocket[] = []
  const started = performance.now()
  let failure: unknown
  for (let i = 0; i < target && failure === undefined; i += 200) {
    const batch = Array.from({ length: Math.min(200, target - i) }, (_, j) => tokens[(i + j) % tokens.length] ?? '')
    const opened = await Promise.allSettled(batch.map(async token => await open(server, token, cursors.get(token))))
    for (const result of opened) {
      if (result.status === 'fulfilled') sockets.push(result.value)
      else failure = result.reason
    }
  }
  const openSeconds = (performance.now() - started) / 1000
  await sleep(1000)
  const held = sockets.filter(ws => ws.readyState === WebSocket.OPEN).length
  const rssAfter = server.rss()
  await Promise.all(sockets.map(async ws => {
    if (ws.readyState === WebSocket.CLOSED) return
    const closed = new Promise<void>(resolve => { ws.once('close', resolve) })
    ws.terminate()
    await closed
  }))
  if (failure !== undefined && held === 0) throw failure
  return { target, held, bytesPerSocket: held === 0 ? NaN : (rssAfter - rssBefore) / held, rssBefore, rssAfter, openSeconds }
}
