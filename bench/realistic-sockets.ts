import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectionPool, send } from './load.js'

// The client side of the `realistic` scenario, in a process of its own (forked by
// bench/realistic.ts): it holds every device's socket to GET /ws, notes when each message
// frame reaches each of the recipient's sockets, and acknowledges each message from the
// recipient's device 1 as a client does (POST /ack_messages {up_to_id}) once it arrives.
// Times are the system's monotonic clock (process.hrtime), which every process on the
// machine shares: the sender's write times, taken in another process, compare with them.

interface WsClient {
  readyState: number
  on: ((event: 'message', listener: (data: Buffer) => void) => void) & ((event: 'close', listener: (code: number) => void) => void)
  once: ((event: 'open' | 'close', listener: () => void) => void) &
  ((event: 'error', listener: (error: Error) => void) => void) &
  ((event: 'unexpected-response', listener: (request: unknown, response: { statusCode?: number }) => void) => void)
  terminate: () => void
}
const WebSocket = createRequire(import.meta.url)('ws') as { new (url: string, options?: object): WsClient, OPEN: number }

/** One device as the parent describes it. */
export interface DeviceSpec { token: string, user: number, ack: boolean }

export type ToSockets =
  | { type: 'open', url: string, devices: DeviceSpec[], batch: number }
  | { type: 'collect', expected: Array<[number, number]>, waitMs: number }
  | { type: 'close' }

export type FromSockets =
  | { type: 'opened', held: number, failed: number, firstError: string | null, seconds: number }
  | {
    type: 'collected'
    /** [message id, arrival ms] for every message frame on a recipient's socket, flattened */
    arrivals: number[]
    /** frames received by type, acks by HTTP status */
    frames: Record<string, number>
    acks: Record<string, number>
    closed: number
  }

const now = (): number => Number(process.hrtime.bigint()) / 1e6

const arrivals = new Map<number, number[]>() // message id -> arrival times at its recipient's sockets
const frames: Record<string, number> = {}
const acks: Record<string, number> = {}
const socketsOf = new Map<number, number>() // user id -> sockets held
let closed = 0
const inFlight = { acks: 0 } // acks sent and not yet answered
let target: URL | undefined
const agent = connectionPool(256) // the recipients' acks
const sockets: WsClient[] = []

function count (table: Record<string, number>, key: string): void {
  table[key] = (table[key] ?? 0) + 1
}

function ack (token: string, id: number): void {
  if (target === undefined) return
  inFlight.acks++
  send(agent, target, { method: 'POST', path: '/ack_messages', headers: { authorization: `Bearer ${token}` }, body: `{"up_to_id":${id}}` })
    .then(res => { count(acks, String(res.status)) }, () => { count(acks, 'error') })
    .finally(() => { inFlight.acks-- })
}

async function openOne (url: string, device: DeviceSpec): Promise<WsClient> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${encodeURIComponent(device.token)}`, { perMessageDeflate: false })
  // the listener is there before the upgrade's answer: frames may come with it
  const ready = new Promise<void>((resolve, reject) => {
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => { reject(new Error(`/ws answered ${res.statusCode ?? 0}`)) })
    ws.on('message', (data: Buffer) => {
      const at = now()
      let frame: { type?: string, message?: { id?: number, recipient_id?: number } }
      try { frame = JSON.parse(data.toString()) } catch { count(frames, 'unparsable'); return }
      const type = typeof frame.type === 'string' ? frame.type : 'untyped'
      count(frames, type)
      if (type === 'ready') { resolve(); return }
      const id = frame.message?.id
      // the sender's devices get the message too: only the recipient's sockets count
      if (type !== 'message' || typeof id !== 'number' || frame.message?.recipient_id !== device.user) return
      const times = arrivals.get(id)
      if (times === undefined) arrivals.set(id, [at])
      else times.push(at)
      if (device.ack) ack(device.token, id)
    })
  })
  ws.on('close', () => { closed++ })
  await ready
  return ws
}

async function openAll (url: string, devices: DeviceSpec[], batch: number): Promise<FromSockets> {
  target = new URL(url)
  const started = performance.now()
  let failed = 0
  let firstError: string | null = null
  for (let i = 0; i < devices.length; i += batch) {
    const results = await Promise.allSettled(devices.slice(i, i + batch).map(async device => await openOne(url, device)))
    results.forEach((result, j) => {
      if (result.status === 'fulfilled') {
        sockets.push(result.value)
        const user = devices[i + j]?.user ?? 0
        socketsOf.set(user, (socketsOf.get(user) ?? 0) + 1)
      } else {
        failed++
        firstError ??= String(result.reason)
      }
    })
  }
  const seconds = (performance.now() - started) / 1000
  return { type: 'opened', held: sockets.filter(ws => ws.readyState === WebSocket.OPEN).length, failed, firstError, seconds }
}

/** Waits (up to waitMs) until each expected [id, recipient] reached every socket of its recipient and every ack was answered. */
async function collect (expected: Array<[number, number]>, waitMs: number): Promise<FromSockets> {
  const deadline = Date.now() + waitMs
  const missing = (): boolean => expected.some(([id, user]) => (arrivals.get(id)?.length ?? 0) < (socketsOf.get(user) ?? 0))
  while ((missing() || inFlight.acks > 0) && Date.now() < deadline) await sleep(20)
  const flat: number[] = []
  for (const [id, times] of arrivals) for (const at of times) flat.push(id, at)
  return { type: 'collected', arrivals: flat, frames, acks, closed }
}

process.on('message', (message: ToSockets) => {
  const reply = (answer: FromSockets): void => { process.send?.(answer) }
  if (message.type === 'open') {
    openAll(message.url, message.devices, message.batch).then(reply, (error: unknown) => { throw error })
  } else if (message.type === 'collect') {
    collect(message.expected, message.waitMs).then(reply, (error: unknown) => { throw error })
  } else {
    for (const ws of sockets) ws.terminate()
    agent.close().finally(() => process.disconnect())
  }
})
