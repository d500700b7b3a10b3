import fp from 'fastify-plugin'

// The delivery hub carries hints between the code that stores events and the sockets
// and long-polls waiting for them: "user X has news" and "disconnect user X". Events
// live in the database with their cursor; a hint only says "look again", may be
// duplicated or (across instances) lost, and every listener re-queries from its cursor.
// This is the in-process hub; a Redis-backed one implements the same interface.

export type HubSignal =
  | { kind: 'news' }
  /** Close the user's connections: all of them, or only those authenticated by token `jti`. */
  | { kind: 'disconnect', jti?: string | undefined }

export type HubListener = (signal: HubSignal) => void

export interface DeliveryHub {
  /** Tells these users' listeners, on every instance, to look for new events. Call after commit; never throws. */
  publish: (userIds: readonly number[]) => Promise<void>
  /** Closes the user's sockets and ends its long-polls on every instance (logout, password change, deletion). Never throws. */
  disconnectUser: (userId: number, jti?: string) => Promise<void>
  /**
   * Listens for the user's signals. Resolves once signals published from now on will
   * arrive (so: subscribe, then query, then wait). Listeners must tolerate spurious
   * `news`: a hub that may have lost hints wakes everyone.
   */
  subscribe: (userId: number, listener: HubListener) => Promise<() => void>
}

export class LocalHub implements DeliveryHub {
  readonly #listeners = new Map<number, Set<HubListener>>()

  async publish (userIds: readonly number[]): Promise<void> {
    for (const userId of new Set(userIds)) this.#emit(userId, { kind: 'news' })
  }

  async disconnectUser (userId: number, jti?: string): Promise<void> {
    this.#emit(userId, { kind: 'disconnect', jti })
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

  #emit (userId: number, signal: HubSignal): void {
    for (const listener of [...this.#listeners.get(userId) ?? []]) listener(signal)
  }
}

export default fp(async function hubPlugin (fastify) {
  fastify.decorate('hub', new LocalHub())
}, { name: 'hub' })

declare module 'fastify' {
  interface FastifyInstance {
    hub: DeliveryHub
  }
}
