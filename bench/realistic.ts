import { fork } from 'node:child_process'
import { createHmac, randomUUID } from 'node:crypto'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { hash } from '@node-rs/argon2'
import { sql } from 'kysely'
import { connect, type DatabaseSettings } from '../db/connect.js'
import { dayStart } from '../db/devices.js'
import { migrateToLatest } from '../db/migrate.js'
import { usernameKey } from '../db/users.js'
import type { EventLoopDelay } from './event-loop-delay.js'
import { connectionPool, fixedRate, percentile, type HttpRequest } from './load.js'
import { cpuOf, type Served } from './processes.js'
import type { DeviceSpec, FromSockets, ToSockets } from './realistic-sockets.js'
import { PASSWORD, blob } from './seed.js'

// The headline scenario of issue 16: a relay's real load. Many connected, mostly idle
// devices (each user has DEVICES devices, each holding a socket to GET /ws), a few accepted
// contacts each, and a steady rate of sends between random contacts, each pushed to the
// recipient's sockets (and the sender's: a user's devices all see what it sent) and
// acknowledged by the recipient's device 1 as soon as it arrives (POST /ack_messages).
//
// Seeded straight into the database (thousands of Argon2 hashes and API calls would take
// minutes): users with one precomputed password hash, their second devices and the accepted
// contacts, no events. The tokens are signed here with the server's JWT_SECRET (the bench
// gives the server that secret) with the very claims the server's own login puts in its
// tokens (checked against a real login before the run); the server verifies each of them
// at the upgrade like any other: signature, expiry, session, account and device.
//
// Three processes share the machine's cores: the server, the sockets' process (every
// client socket and the acks, forked from here) and this one (the sender). The CPU time of
// each is measured over the run and reported beside the server's.

const here = dirname(fileURLToPath(import.meta.url))

export const DEVICES = 2
export const CONTACTS = 4

export interface World {
  users: Array<{ id: number, name: string, contacts: number[], devices: Array<{ key: number, id: number }> }>
  /** every user's contacts, as indexes into `users` */
  contactPairs: number
}

/**
 * `users` users named real0, real1…, each with DEVICES devices and CONTACTS accepted
 * contacts (user i with i ± 1, i ± 2… around a ring), in a fresh database.
 */
export async function seedRealistic (settings: DatabaseSettings, users: number): Promise<World> {
  if (users <= CONTACTS) throw new Error(`the realistic scenario needs more than ${CONTACTS} users`)
  const db = connect(settings)
  try {
    await migrateToLatest(db)
    const passwordHash = await hash(PASSWORD)
    const now = Date.now()
    const names = Array.from({ length: users }, (_, i) => `real${i}`)
    for (let i = 0; i < users; i += 500) {
      // device 1 comes with each user (a trigger)
      await db.insertInto('users').values(names.slice(i, i + 500).map(name => ({ username: name, username_key: usernameKey(name), password_hash: passwordHash, created_at: now }))).execute()
    }
    const rows = await db.selectFrom('users').select(['id', 'username']).where('username', 'like', 'real%').execute()
    const idOf = new Map(rows.map(row => [row.username, Number(row.id)]))
    const ids = names.map(name => idOf.get(name) ?? NaN)
    if (ids.some(id => !Number.isSafeInteger(id))) throw new Error('a seeded user is missing: the database is not fresh')
    for (let d = 2; d <= DEVICES; d++) {
      for (let i = 0; i < users; i += 500) {
        await db.insertInto('devices').values(ids.slice(i, i + 500).map(id => ({ user_id: id, device_id: d, registration_id: 1 + (id * DEVICES + d) % 16380, created_at: now, last_seen_at: dayStart(now) }))).execute()
      }
    }
    const contacts: number[][] = names.map(() => [])
    const requests: Array<{ requester_id: number, requested_id: number, user_lo: number, user_hi: number, status: 'accepted', created_at: number, updated_at: number }> = []
    for (let i = 0; i < users; i++) {
      for (let k = 1; k <= CONTACTS / 2; k++) {
        const j = (i + k) % users
        const a = ids[i] ?? 0
        const b = ids[j] ?? 0
        contacts[i]?.push(j)
        contacts[j]?.push(i)
        requests.push({ requester_id: a, requested_id: b, user_lo: Math.min(a, b), user_hi: Math.max(a, b), status: 'accepted', created_at: now, updated_at: now })
      }
    }
    for (let i = 0; i < requests.length; i += 500) await db.insertInto('chat_requests').values(requests.slice(i, i + 500)).execute()
    const devices = await db.selectFrom('devices').select(['id', 'user_id', 'device_id']).orderBy('device_id').execute()
    const devicesOf = new Map<number, Array<{ key: number, id: number }>>()
    for (const device of devices) {
      const list = devicesOf.get(Number(device.user_id)) ?? []
      list.push({ key: Number(device.id), id: device.device_id })
      devicesOf.set(Number(device.user_id), list)
    }
    await sql`analyze`.execute(db)
    return {
      users: names.map((name, i) => ({ id: ids[i] ?? 0, name, contacts: contacts[i] ?? [], devices: devicesOf.get(ids[i] ?? 0) ?? [] })),
      contactPairs: requests.length
    }
  } finally {
    await db.destroy()
  }
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url')

/** An HS256 token with the claims of the server's own (plugins/app/auth.ts issueToken). */
export function signToken (secret: string, claims: { user_id: number, username: string, device_id: number, dk: number }, ttlSeconds = 3600): string {
  const iat = Math.floor(Date.now() / 1000)
  const head = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const body = base64url(JSON.stringify({ ...claims, jti: randomUUID(), ver: 0, iat, exp: iat + ttlSeconds }))
  return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`
}

/** Fails when the server's own tokens carry other claims than `signToken`'s: then the bench no longer tests what clients do. */
export async function checkClaims (server: Served, secret: string, world: World): Promise<void> {
  const user = world.users[0]
  if (user === undefined) throw new Error('no users')
  const res = await fetch(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: user.name, password: PASSWORD }) })
  const real = (await res.json() as { token?: string }).token
  if (res.status !== 200 || real === undefined) throw new Error(`login as ${user.name}: ${res.status}`)
  const keys = (token: string): string => Object.keys(JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as object).sort().join(',')
  const ours = signToken(secret, { user_id: user.id, username: user.name, device_id: 1, dk: user.devices[0]?.key ?? 0 })
  if (keys(real) !== keys(ours)) throw new Error(`the server's tokens have the claims ${keys(real)}, the bench's ${keys(ours)}: update bench/realistic.ts signToken`)
}

export interface RealisticResult {
  sockets: { target: number, held: number, failed: number, firstError: string | null, openSeconds: number, cpuSeconds: number }
  /** perSecond: answered 201 over the time from the first write to the last answer; written: the time the sender took to write them all */
  sends: { planned: number, ok: number, failed: number, perSecond: number, seconds: number, written: number }
  /** one sample per message frame on a recipient's socket, from writing the send */
  delivery: { expected: number, delivered: number, p50: number, p99: number, max: number }
  /** per message: until it reached every one of the recipient's sockets */
  allDevices: { p50: number, p99: number, max: number }
  /** CPU time per message sent (µs) of the server, the sockets' process and the sender */
  cpuUs: { server: number, sockets: number, sender: number }
  /** CPU of each process as a share of one core over the run; the server's with the sockets held and nothing sent */
  cores: { server: number, sockets: number, sender: number, serverIdle: number }
  rss: { before: number, after: number, max: number }
  eventLoop: EventLoopDelay | null
  frames: Record<string, number>
  acks: Record<string, number>
  closedEarly: number
}

/** The server's event-loop delay since the last call (needs the preload of bench/event-loop-delay.ts). */
export async function eventLoopDelay (server: Served, file: string): Promise<EventLoopDelay | null> {
  rmSync(file, { force: true })
  process.kill(server.pid, 'SIGWINCH')
  for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(20)
  await sleep(20) // one small write: done once it exists, but let it finish
  try { return JSON.parse(readFileSync(file, 'utf8')) as EventLoopDelay } catch { return null }
}

export async function realistic (
  server: Served, world: World, secret: string, options: { rate: number, seconds: number, warmupSeconds: number, idleSeconds: number, eldFile: string, profileFile?: string }
): Promise<RealisticResult> {
  const devices: DeviceSpec[] = []
  const tokenOf = new Map<number, string>() // user id -> device 1's token, to send with
  for (const user of world.users) {
    for (const device of user.devices) {
      const token = signToken(secret, { user_id: user.id, username: user.name, device_id: device.id, dk: device.key })
      devices.push({ token, user: user.id, ack: device.id === 1 })
      if (device.id === 1) tokenOf.set(user.id, token)
    }
  }
  const child = fork(join(here, 'realistic-sockets.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] })
  const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  const replies: FromSockets[] = []
  let wake: (() => void) | undefined
  child.on('message', (message: FromSockets) => { replies.push(message); wake?.() })
  const ask = async <T extends FromSockets['type']>(message: ToSockets, type: T): Promise<Extract<FromSockets, { type: T }>> => {
    child.send(message)
    for (;;) {
      const found = replies.findIndex(r => r.type === type)
      if (found >= 0) return replies.splice(found, 1)[0] as Extract<FromSockets, { type: T }>
      if (child.exitCode !== null) throw new Error(`the sockets' process exited with code ${child.exitCode}`)
      await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, 1000) })
    }
  }
  try {
    const childCpu0 = cpuOf(child.pid ?? 0)
    const opened = await ask({ type: 'open', url: server.url, devices, batch: 200 }, 'opened')
    const openCpu = cpuOf(child.pid ?? 0) - childCpu0
    // what the server spends holding the sockets with nothing sent (pings, their token
    // checks, timers): the floor under the CPU per send at a low rate
    await sleep(500)
    const idle0 = server.cpu()
    await sleep(options.idleSeconds * 1000)
    const idleCore = (server.cpu() - idle0) / options.idleSeconds
    // random contact pairs, drawn up front: the sender does nothing but write them
    const total = Math.round(options.rate * (options.seconds + options.warmupSeconds))
    const plan: Array<{ request: HttpRequest, recipient: number }> = []
    for (let i = 0; i < total; i++) {
      const from = world.users[Math.floor(Math.random() * world.users.length)]
      if (from === undefined) continue
      const to = world.users[from.contacts[Math.floor(Math.random() * from.contacts.length)] ?? 0]
      if (to === undefined) continue
      plan.push({
        recipient: to.id,
        request: { method: 'POST', path: '/send_message', headers: { authorization: `Bearer ${tokenOf.get(from.id) ?? ''}` }, body: JSON.stringify({ recipient_username: to.name, sender_blob: blob(), recipient_blob: blob() }) }
      })
    }
    const warm = Math.round(options.rate * options.warmupSeconds)
    // each sender is a device with a connection of its own: a request never waits in the
    // client for a free connection (that wait would count as delivery time); kept alive,
    // the first free one taken, so a server that keeps up needs only a few
    const agent = connectionPool(1024)
    if (warm > 0) await fixedRate(server.url, options.rate, options.warmupSeconds, i => (plan[i] as typeof plan[0]).request, undefined, agent)
    await eventLoopDelay(server, options.eldFile) // what came before the run is dropped
    const written: number[] = []
    const cpu0 = { server: server.cpu(), sockets: cpuOf(child.pid ?? 0), sender: process.cpuUsage() }
    const rssBefore = server.rss()
    let rssMax = rssBefore
    const sampler = setInterval(() => { rssMax = Math.max(rssMax, server.rss()) }, 500)
    const started = performance.now()
    const hrOffset = Number(process.hrtime.bigint()) / 1e6 - performance.now() // fixedRate's clock to the machine's monotonic one
    const samples = await fixedRate(server.url, options.rate, options.seconds, i => (plan[warm + i] as typeof plan[0]).request, (i, at) => { written[i] = at + hrOffset }, agent)
    const sendSeconds = (performance.now() - started) / 1000
    await agent.close()
    const sent = new Map<number, { at: number, recipient: number }>()
    let failed = 0
    samples.forEach((sample, i) => {
      if (sample.status !== 201) { failed++; return }
      sent.set((JSON.parse(sample.body) as { id: number }).id, { at: written[i] ?? NaN, recipient: plan[warm + i]?.recipient ?? 0 })
    })
    const collected = await ask({ type: 'collect', expected: [...sent].map(([id, s]) => [id, s.recipient]), waitMs: 10_000 }, 'collected')
    const cpu = { server: server.cpu() - cpu0.server, sockets: cpuOf(child.pid ?? 0) - cpu0.sockets, sender: (() => { const u = process.cpuUsage(cpu0.sender); return (u.user + u.system) / 1e6 })() }
    const elapsed = (performance.now() - started) / 1000
    clearInterval(sampler)
    const eventLoop = await eventLoopDelay(server, options.eldFile)
    if (options.profileFile !== undefined) for (let i = 0; i < 250 && !existsSync(options.profileFile); i++) await sleep(20)
    const rssAfter = server.rss()
    const perDelivery: number[] = []
    const lastOf = new Map<number, number>()
    const flat = collected.arrivals
    for (let k = 0; k + 1 < flat.length; k += 2) {
      const id = flat[k] ?? 0
      const s = sent.get(id)
      if (s === undefined) continue // warm-up
      const latency = (flat[k + 1] ?? NaN) - s.at
      perDelivery.push(latency)
      lastOf.set(id, Math.max(lastOf.get(id) ?? -Infinity, latency))
    }
    perDelivery.sort((a, b) => a - b)
    const perMessage = [...lastOf.values()].sort((a, b) => a - b)
    const socketsOf = new Map<number, number>()
    for (const d of devices) socketsOf.set(d.user, (socketsOf.get(d.user) ?? 0) + 1)
    const expected = [...sent.values()].reduce((n, s) => n + (socketsOf.get(s.recipient) ?? 0), 0)
    const per = (seconds: number): number => seconds / Math.max(1, sent.size) * 1e6
    return {
      sockets: { target: devices.length, held: opened.held, failed: opened.failed, firstError: opened.firstError, openSeconds: opened.seconds, cpuSeconds: openCpu },
      sends: { planned: samples.length, ok: sent.size, failed, perSecond: sent.size / sendSeconds, seconds: sendSeconds, written: ((written.at(-1) ?? NaN) - (written[0] ?? NaN)) / 1000 },
      delivery: { expected, delivered: perDelivery.length, p50: percentile(perDelivery, 50), p99: percentile(perDelivery, 99), max: perDelivery.at(-1) ?? NaN },
      allDevices: { p50: percentile(perMessage, 50), p99: percentile(perMessage, 99), max: perMessage.at(-1) ?? NaN },
      cpuUs: { server: per(cpu.server), sockets: per(cpu.sockets), sender: per(cpu.sender) },
      cores: { server: cpu.server / elapsed, sockets: cpu.sockets / elapsed, sender: cpu.sender / elapsed, serverIdle: idleCore },
      rss: { before: rssBefore, after: rssAfter, max: Math.max(rssMax, rssAfter) },
      eventLoop,
      frames: collected.frames,
      acks: collected.acks,
      closedEarly: collected.closed
    }
  } finally {
    if (child.exitCode === null) {
      child.send({ type: 'close' } satisfies ToSockets)
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  }
}
