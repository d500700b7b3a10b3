import type { AddressInfo } from 'node:net'
import { Value } from '@sinclair/typebox/value'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { WebSocket } from 'ws'
import { LocalHub } from '../plugins/app/hub.js'
import { RedisHub } from '../plugins/app/redis-hub.js'
import { ServerFrame, type WireFrame } from '../routes/realtime/events.js'
import { SyncReply } from '../routes/realtime/sync.js'
import { befriend, call, user } from './helper.js'

// Real sockets against a listening server, and helpers for the event streams.

/** Listens on a free port; returns the ws:// base URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

export interface Person { name: string, token: string }

/** Two users who are accepted contacts. */
export async function pair (app: FastifyInstance, a = 'alice', b = 'bob'): Promise<[Person, Person]> {
  const alice = { name: a, token: await user(app, a) }
  const bob = { name: b, token: await user(app, b) }
  await befriend(app, alice, bob)
  return [alice, bob]
}

let counter = 0
export async function send (app: FastifyInstance, from: Person, to: Person, extra: Record<string, unknown> = {}): Promise<LightMyRequestResponse> {
  counter++
  const res = await call(app, from.token, {
    method: 'POST',
    url: '/send_message',
    payload: { recipient_username: to.name, sender_blob: `for-${from.name}-${counter}`, recipient_blob: `for-${to.name}-${counter}`, ...extra }
  })
  if (res.statusCode !== 201) throw new Error(`send_message: ${res.statusCode} ${res.body}`)
  return res
}

/** GET /sync, its reply checked against the schema. */
export async function sync (t: Test, app: FastifyInstance, token: string, query: Record<string, string | number> = {}): Promise<{ events: any[], next: string, has_more: boolean }> {
  const res = await call(app, token, { method: 'GET', url: '/sync', query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])) })
  t.equal(res.statusCode, 200, `sync: ${res.body.slice(0, 200)}`)
  const body = res.json()
  t.ok(Value.Check(SyncReply, body), `sync reply matches its schema: ${JSON.stringify([...Value.Errors(SyncReply, body)].slice(0, 2))}`)
  return body
}

export type Via = 'protocol' | 'query' | 'header'

/** A WebSocket client that keeps every frame, checks each against the schema, and lets a test wait for the next ones. */
export class Client {
  readonly frames: WireFrame[] = []
  readonly invalid: unknown[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  #read = 0
  #notify: (() => void) | undefined

  private constructor (readonly ws: WebSocket) {
    ws.on('message', data => {
      const frame = JSON.parse(data.toString())
      if (!Value.Check(ServerFrame, frame)) this.invalid.push(frame)
      this.frames.push(frame)
      this.#notify?.()
    })
    this.closed = new Promise(resolve => ws.on('close', (code, reason) => {
      this.#notify?.()
      resolve({ code, reason: reason.toString() })
    }))
  }

  static async open (base: string, token: string, options: { since?: string, via?: Via } = {}): Promise<Client> {
    const via = options.via ?? 'protocol'
    const query = new URLSearchParams()
    if (options.since !== undefined) query.set('since', options.since)
    if (via === 'query') query.set('token', token)
    const ws = new WebSocket(`${base}/ws?${query}`, via === 'protocol' ? ['bearer', token] : [], {
      headers: via === 'header' ? { authorization: `Bearer ${token}` } : {}
    })
    const client = new Client(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return client
  }

  /** Opening must fail: the HTTP status the server answered the upgrade with. */
  static async refused (base: string, token: string | undefined, path = '/ws'): Promise<{ status: number, body: any }> {
    const ws = new WebSocket(`${base}${path}`, token === undefined ? [] : ['bearer', token])
    return await new Promise((resolve, reject) => {
      ws.once('open', () => { ws.close(); reject(new Error('the socket opened')) })
      ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', chunk => { body += chunk })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }))
      })
    })
  }

  /** The next frame not read yet, waiting for it if need be; undefined if the socket closed first. */
  async next (): Promise<WireFrame | undefined> {
    while (this.#read >= this.frames.length) {
      if (this.ws.readyState === WebSocket.CLOSED) return undefined
      await new Promise<void>(resolve => { this.#notify = resolve })
    }
    return this.frames[this.#read++]
  }

  /** Reads frames up to and including the first of this type. */
  async until (type: string): Promise<WireFrame[]> {
    const seen: WireFrame[] = []
    for (;;) {
      const frame = await this.next()
      if (frame === undefined) throw new Error(`socket closed before a ${type} frame; got ${JSON.stringify(seen)}`)
      seen.push(frame)
      if (frame.type === type) return seen
    }
  }

  /** Reads the next n frames. */
  async take (n: number): Promise<WireFrame[]> {
    const frames: WireFrame[] = []
    while (frames.length < n) {
      const frame = await this.next()
      if (frame === undefined) throw new Error(`socket closed after ${frames.length} of ${n} frames`)
      frames.push(frame)
    }
    return frames
  }

  async close (): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close()
    await this.closed
  }
}

/** Waits until a condition holds (the test runner's timeout bounds the wait). */
export async function eventually (condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!await condition()) await new Promise(resolve => setTimeout(resolve, 20))
}

/** The app's hub (in-process, or through Redis with REDIS_URL), to see who listens on this instance. */
export function hub (app: FastifyInstance): LocalHub | RedisHub {
  if (app.hub instanceof LocalHub || app.hub instanceof RedisHub) return app.hub
  throw new Error('an unknown hub')
}

export async function idOf (app: FastifyInstance, username: string): Promise<number> {
  return (await app.db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirstOrThrow()).id
}
