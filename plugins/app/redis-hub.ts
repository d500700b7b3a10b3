import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Appended } from '../../db/events.js'
import { Redis, type RedisOptions } from 'ioredis'
import { LocalHub, type DeliveryHub, type DisconnectScope, type HubListener, type HubState } from './hub.js'
import type { HintObserver } from './metrics.js'

// The delivery hub shared by every instance through Redis (REDIS_URL), the way
// Signal-Server carries "messages available" between its machines: one pub/sub channel per
// user, which an instance subscribes to only while that user has a socket or long-poll on
// it. Redis 7's sharded pub/sub (SSUBSCRIBE/SPUBLISH) where the server has it, plain
// SUBSCRIBE/PUBLISH on older ones.
//
// What crosses Redis is a hint, never an event: "user N has news" or "close user N's
// sessions (the one with token jti)". Pub/sub is at most once, so the hub treats any break
// of its subscriber connection as "hints may have been lost": it wakes every local listener
// (each re-reads the database from its cursor), and until Redis is back it wakes them every
// `fallbackMs` instead (the fallback poll). Hints published while the publisher is down are
// kept (one per user) and sent when it reconnects.

const NEWS = 'n'
const DISCONNECT = 'd'

export interface RedisHubOptions {
  /** REDIS_PREFIX: the same on every instance of one service. */
  prefix?: string
  /** How often local listeners re-read while Redis is unreachable. */
  fallbackMs?: number
  /** How long a start waits for Redis before the hub starts degraded (it keeps trying). */
  connectWaitMs?: number
  /** Counts hints published and received (metrics; undefined when off). */
  hints?: HintObserver | undefined
}

function clientOptions (name: string): RedisOptions {
  return {
    connectionName: name,
    // commands fail at once while disconnected instead of queueing behind a reconnect:
    // a route handler or a subscription never waits on an outage
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 2000,
    autoResubscribe: false, // the hub resubscribes itself, and knows when it is done
    retryStrategy: times => Math.min(100 * times, 1000),
    lazyConnect: true
  }
}

/** The channel of a user's hints (the prefix keeps services sharing one Redis apart). */
function channelOf (prefix: string, userId: number): string {
  return `${prefix}user:${userId}`
}

/**
 * Drops a connection that looks fine but failed (a command timed out): ioredis reconnects.
 * Destroyed, not ended: ending waits for a peer that does not answer.
 */
function drop (client: Redis): void {
  if (client.status === 'ready') client.stream.destroy()
}

/** Ends a client whatever its state: QUIT when connected (pending replies arrive first), else drop it. */
async function closeClient (client: Redis): Promise<void> {
  if (client.status === 'ready') {
    await Promise.race([client.quit().catch(() => {}), new Promise(resolve => setTimeout(resolve, 1000).unref())])
  }
  client.disconnect()
}

/** Sends hints with a short-lived connection: for the admin CLI, another process than the server. */
export async function publishDisconnects (redisUrl: string, prefix: string, userIds: readonly number[]): Promise<void> {
  const client = new Redis(redisUrl, { ...clientOptions('cryptachat-cli'), retryStrategy: () => null })
  try {
    await client.connect()
    const sharded = await supportsShardedPubSub(client)
    const message = `${DISCONNECT}:cli:`
    for (const userId of userIds) await (sharded ? client.spublish(channelOf(prefix, userId), message) : client.publish(channelOf(prefix, userId), message))
  } finally {
    await closeClient(client)
  }
}

async function supportsShardedPubSub (client: Redis): Promise<boolean> {
  const info = await client.info('server')
  const major = Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0)
  return major >= 7
}

export class RedisHub implements DeliveryHub {
  /** Who listens on this instance; signals from Redis and from this instance are emitted through it. */
  readonly #local = new LocalHub()
  /** Tags this instance's messages, so that it does not act twice on its own hints. */
  readonly #origin = randomBytes(6).toString('base64url')
  readonly #pub: Redis
  readonly #sub: Redis
  readonly #log: FastifyBaseLogger
  readonly #fallbackMs: number
  readonly #channelPrefix: string
  readonly #connectWaitMs: number
  readonly #hints: HintObserver | undefined
  /** Users with a local listener, and their subscription (resolved once Redis confirmed it, or given up on). */
  readonly #channels = new Map<number, { listeners: number, subscribed: Promise<void> }>()
  /** Hints that could not be sent (publisher down): user id -> message, sent on reconnect. */
  readonly #unsent = new Map<number, string>()
  #sharded = true
  #degraded = true
  #warned = false
  #closed = false
  #fallback: NodeJS.Timeout | undefined
  #heartbeat: NodeJS.Timeout | undefined
  #beating = false

  constructor (redisUrl: string, log: FastifyBaseLogger, options: RedisHubOptions = {}) {
    this.#log = log
    this.#fallbackMs = options.fallbackMs ?? 1000
    this.#channelPrefix = channelOf(options.prefix ?? 'cryptachat:', 0).slice(0, -1)
    this.#connectWaitMs = options.connectWaitMs ?? 3000
    this.#hints = options.hints
    this.#pub = new Redis(redisUrl, clientOptions('cryptachat-hub-pub'))
    this.#sub = new Redis(redisUrl, clientOptions('cryptachat-hub-sub'))
    this.#pub.on('error', () => {}) // reported through the subscriber's state; ioredis reconnects
    this.#sub.on('error', () => {})
    this.#pub.on('ready', () => this.#flushUnsent())
    this.#sub.on('ready', () => { this.#resubscribe().catch(error => this.#restart(error)) })
    this.#sub.on('close', () => this.#lost())
    this.#sub.on('smessage', (channel: string, message: string) => this.#receive(channel, message))
    this.#sub.on('message', (channel: string, message: string) => this.#receive(channel, message))
  }

  /** Connects; resolves when the hub works, or after `connectWaitMs` degraded (it keeps trying). */
  async start (): Promise<void> {
    this.#startFallback()
    // a Redis that keeps the connection open but stops answering sends no `close`: a PING
    // that times out (commandTimeout) is how the hub notices, and it drops the connection
    this.#heartbeat = setInterval(() => this.#beat(), this.#fallbackMs)
    const ready = new Promise<void>(resolve => { this.#onHealthy = resolve })
    this.#pub.connect().catch(() => {})
    this.#sub.connect().catch(() => {})
    let timer: NodeJS.Timeout | undefined
    await Promise.race([ready, new Promise<void>(resolve => { timer = setTimeout(resolve, this.#connectWaitMs) })])
    clearTimeout(timer)
    if (this.#degraded) this.#lost(new Error(`Redis did not answer within ${this.#connectWaitMs} ms`))
  }

  #onHealthy: (() => void) | undefined

  get state (): HubState {
    return this.#degraded ? 'degraded' : 'connected'
  }

  async publish (userIds: readonly number[], events?: Appended): Promise<void> {
    const users = [...new Set(userIds)]
    this.#hints?.published('news', users.length)
    this.#local.emit(users, { kind: 'news', events })
    this.#send(users, `${NEWS}:${this.#origin}`)
  }

  async disconnectUser (userId: number, scope: DisconnectScope = {}): Promise<void> {
    this.#hints?.published('disconnect', 1)
    this.#local.emit([userId], { kind: 'disconnect', jti: scope.jti, device: scope.device })
    this.#send([userId], `${DISCONNECT}:${this.#origin}:${scope.jti ?? ''}:${scope.device ?? ''}`)
  }

  async subscribe (userId: number, listener: HubListener): Promise<() => void> {
    const unlisten = await this.#local.subscribe(userId, listener)
    let channel = this.#channels.get(userId)
    if (channel === undefined) {
      channel = { listeners: 0, subscribed: this.#subscribeChannel(userId) }
      this.#channels.set(userId, channel)
    }
    channel.listeners++
    const entry = channel
    let done = false
    await entry.subscribed
    return () => {
      if (done) return
      done = true
      unlisten()
      if (--entry.listeners > 0 || this.#channels.get(userId) !== entry) return
      this.#channels.delete(userId)
      // while degraded there is nothing to undo: a reconnect subscribes only what #channels holds
      if (!this.#degraded && !this.#closed) this.#unsubscribeChannel(userId)
    }
  }

  /** Local listeners (for tests and metrics). */
  listenerCount (userId: number): number {
    return this.#local.listenerCount(userId)
  }

  /** Users this instance holds a Redis subscription for (for tests and metrics). */
  get subscribedUsers (): number {
    return this.#channels.size
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#stopFallback()
    clearInterval(this.#heartbeat)
    await Promise.all([closeClient(this.#pub), closeClient(this.#sub)])
  }

  async #subscribeChannel (userId: number): Promise<void> {
    if (this.#degraded) return // the fallback poll covers it; the reconnect subscribes it
    try {
      await (this.#sharded ? this.#sub.ssubscribe(this.#channel(userId)) : this.#sub.subscribe(this.#channel(userId)))
    } catch (error) {
      this.#restart(error) // a listener that could not subscribe is woken by the fallback poll meanwhile
    }
  }

  /** A subscription failed on a connection that looks fine: drop it, so that the reconnect subscribes everything again. */
  #restart (error: unknown): void {
    this.#lost(error)
    drop(this.#sub)
  }

  #beat (): void {
    if (this.#beating || this.#degraded || this.#closed || this.#sub.status !== 'ready') return
    this.#beating = true
    this.#sub.ping().catch(error => this.#restart(error)).finally(() => { this.#beating = false })
  }

  #channel (userId: number): string {
    return `${this.#channelPrefix}${userId}`
  }

  #unsubscribeChannel (userId: number): void {
    ;(this.#sharded ? this.#sub.sunsubscribe(this.#channel(userId)) : this.#sub.unsubscribe(this.#channel(userId))).catch(() => {})
  }

  #send (userIds: readonly number[], message: string): void {
    if (userIds.length === 0) return
    if (this.#pub.status !== 'ready') {
      for (const userId of userIds) this.#keepUnsent(userId, message)
      return
    }
    const pipeline = this.#pub.pipeline()
    for (const userId of userIds) {
      if (this.#sharded) pipeline.spublish(this.#channel(userId), message)
      else pipeline.publish(this.#channel(userId), message)
    }
    const unsent = (): void => {
      for (const userId of userIds) this.#keepUnsent(userId, message)
      drop(this.#pub) // kept until the publisher is ready again: make sure it reconnects
    }
    pipeline.exec().then(results => { if (results?.some(([error]) => error !== null)) unsent() }, unsent)
  }

  /** One hint per user is enough, but a disconnect outranks news. */
  #keepUnsent (userId: number, message: string): void {
    if (this.#closed) return
    const kept = this.#unsent.get(userId)
    if (kept === undefined || kept.startsWith(NEWS)) this.#unsent.set(userId, message)
    else if (message.startsWith(DISCONNECT) && kept !== message) this.#unsent.set(userId, `${DISCONNECT}:${this.#origin}:`) // two sessions: close all
  }

  #flushUnsent (): void {
    const unsent = [...this.#unsent]
    this.#unsent.clear()
    for (const [userId, message] of unsent) this.#send([userId], message)
  }

  #receive (channel: string, message: string): void {
    if (!channel.startsWith(this.#channelPrefix)) return
    const userId = Number(channel.slice(this.#channelPrefix.length))
    const [kind, origin, jti, device] = message.split(':')
    if (origin === this.#origin) return // emitted locally when published
    if (kind === NEWS) {
      this.#hints?.received('news')
      this.#local.emit([userId], { kind: 'news' })
    } else if (kind === DISCONNECT) {
      this.#hints?.received('disconnect')
      this.#local.emit([userId], { kind: 'disconnect', jti: jti === '' ? undefined : jti, device: device === undefined || device === '' ? undefined : Number(device) })
    }
  }

  /** The subscriber connected (again): subscribe every user listening here, then wake them all (hints may have been lost). */
  async #resubscribe (): Promise<void> {
    this.#sharded = await supportsShardedPubSub(this.#sub)
    // users who start listening meanwhile are still "degraded" (not subscribed by
    // #subscribeChannel): go round until none is left, then turn healthy in the same tick
    const done = new Set<number>()
    for (;;) {
      const todo = [...this.#channels.keys()].filter(userId => !done.has(userId))
      if (todo.length === 0) break
      for (let i = 0; i < todo.length; i += 500) {
        const batch = todo.slice(i, i + 500).map(userId => this.#channel(userId))
        if (this.#sharded) await Promise.all(batch.map(async channel => await this.#sub.ssubscribe(channel)))
        else await this.#sub.subscribe(...batch)
      }
      for (const userId of todo) done.add(userId)
    }
    if (this.#closed || this.#sub.status !== 'ready') return
    const wasDegraded = this.#degraded
    this.#degraded = false
    this.#stopFallback()
    // users whose last listener left while the hub resubscribed: their channels are not wanted
    for (const userId of done) if (!this.#channels.has(userId)) this.#unsubscribeChannel(userId)
    if (this.#warned) this.#log.info('delivery hub: Redis is back; pushes are immediate again')
    this.#warned = false
    this.#onHealthy?.()
    this.#onHealthy = undefined
    if (wasDegraded) this.#local.emitAll({ kind: 'news' })
  }

  /** The subscriber is gone (or a subscription failed): hints may be lost until it is back. */
  #lost (error?: unknown): void {
    if (this.#closed) return
    if (!this.#warned) {
      this.#warned = true
      this.#log.warn({ err: error }, `delivery hub: Redis unreachable; sockets and long-polls read the database every ${this.#fallbackMs} ms until it is back`)
    }
    if (this.#degraded) return
    this.#degraded = true
    this.#local.emitAll({ kind: 'news' })
    this.#startFallback()
  }

  #startFallback (): void {
    if (this.#fallback !== undefined || this.#closed) return
    this.#fallback = setInterval(() => { if (this.#degraded) this.#local.emitAll({ kind: 'news' }) }, this.#fallbackMs)
  }

  #stopFallback (): void {
    clearInterval(this.#fallback)
    this.#fallback = undefined
  }
}
