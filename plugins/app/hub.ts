import fp from 'fastify-plugin'
import type { Appended, StoredEvent } from '../../db/events.js'
import type { HintObserver } from './metrics.js'
import { RedisHub } from './redis-hub.js'

// The delivery hub carries hints between the code that stores events and the sockets
// and long-polls waiting for them: "user X has news" and "disconnect user X". Events
// live in the database with their cursor; a hint only says "look again", may be
// duplicated or (across instances) lost, and every listener re-queries from its cursor.
// This is the in-process hub, the default; with REDIS_URL the Redis-backed one
// (redis-hub.ts) carries them between instances.

export type HubSignal =
  /**
   * With `events`, published on this instance: what its commit appended, by device key
   * (db/events.ts Appended), which that device's sockets may send without reading it back
   * when it follows on from their cursor. Signals from other instances never carry events.
   */
  | { kind: 'news', events?: ReadonlyMap<number, readonly StoredEvent[]> | undefined }
  /** Close the user's connections: all of them, or only those of token `jti`, or of device `device` (devices.id). */
  | { kind: 'disconnect', jti?: string | undefined, device?: number | undefined }

/** Which connections a disconnect closes: one token's, one device's, or (neither said) all of the user's. */
export interface DisconnectScope {
  jti?: string | undefined
  device?: number | undefined
}

/** Whether a disconnect signal closes a connection of this token and device. */
export function closes (signal: DisconnectScope, jti: string, deviceKey: number): boolean {
  if (signal.jti === undefined && signal.device === undefined) return true
  return signal.jti === jti || signal.device === deviceKey
}

export type HubListener = (signal: HubSignal) => void

/** 'local': one process, nothing to lose; 'connected': Redis carries hints; 'degraded': Redis is unreachable and listeners poll the database. */
export type HubState = 'local' | 'connected' | 'degraded'

export interface DeliveryHub {
  /**
   * Tells these users' listeners, on every instance, to look for new events; this
   * instance's also get `events`, what the commit appended. Call after commit; never throws.
   */
  publish: (userIds: readonly number[], events?: Appended) => Promise<void>
  /** Closes the user's sockets and ends its long-polls on every instance (logout, password change, deletion, a device removed), or only those in `scope`. Never throws. */
  disconnectUser: (userId: number, scope?: DisconnectScope) => Promise<void>
  /**
   * Listens for the user's signals. Resolves once signals published from now on will
   * arrive (so: subscribe, then query, then wait). Listeners must tolerate spurious
   * `news`: a hub that may have lost hints wakes everyone.
   */
  subscribe: (userId: number, listener: HubListener) => Promise<() => void>
  readonly state: HubState
  close: () => Promise<void>
}

export class LocalHub implements DeliveryHub {
  readonly #listeners = new Map<number, Set<HubListener>>()
  readonly state = 'local'

  /** `hints` counts what is published (metrics; undefined when off). */
  constructor (private readonly hints?: HintObserver) {}

  async publish (userIds: readonly number[], events?: Appended): Promise<void> {
    const users = new Set(userIds)
    this.hints?.published('news', users.size)
    this.emit(users, { kind: 'news', events })
  }

  async disconnectUser (userId: number, scope: DisconnectScope = {}): Promise<void> {
    this.hints?.published('disconnect', 1)
    this.emit([userId], { kind: 'disconnect', jti: scope.jti, device: scope.device })
  }

  async subscribe (userId: number, listener: HubListener): Promise<() => void> {
    let set = this.#listeners.get(userId)
    if (set === undefined) this.#listeners.set(userId, set = new Set())
    set.add(listener)
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.#listeners.get(userId) === set) this.#listeners.delete(userId)
    }
  }

  /** Listeners of one user on this instance (for tests and metrics). */
  listenerCount (userId: number): number {
    return this.#listeners.get(userId)?.size ?? 0
  }

  /** Signals these users' listeners on this instance. */
  emit (userIds: Iterable<number>, signal: HubSignal): void {
    for (const userId of userIds) {
      for (const listener of [...this.#listeners.get(userId) ?? []]) listener(signal)
    }
  }

  /** Signals every listener on this instance (hints may have been lost: everyone looks again). */
  emitAll (signal: HubSignal): void {
    this.emit([...this.#listeners.keys()], signal)
  }

  async close (): Promise<void> {}
}

export default fp(async function hubPlugin (fastify) {
  const { redisUrl } = fastify.config
  let hub: DeliveryHub
  if (redisUrl === undefined) {
    hub = new LocalHub(fastify.metrics.hints)
  } else {
    const redisHub = new RedisHub(redisUrl, fastify.log.child({ component: 'hub' }), { prefix: fastify.config.redisPrefix, hints: fastify.metrics.hints })
    await redisHub.start()
    hub = redisHub
  }
  fastify.decorate('hub', hub)
  fastify.addHook('onClose', async () => { await hub.close() })
}, { name: 'hub', dependencies: ['config', 'metrics'] })

declare module 'fastify' {
  interface FastifyInstance {
    hub: DeliveryHub
  }
}
