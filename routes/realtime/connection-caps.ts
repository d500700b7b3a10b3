import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../../config.js'
import { TooManyConnections } from '../../errors.js'
import { sourceKey } from '../../plugins/app/source-key.js'

/** What a refused client is told to wait: about the time a long-poll is held. */
const RETRY_AFTER_SECONDS = 30

// WebSockets and waiting long-polls held at once, per account and per address (an IPv6 /64
// as one), counted by this instance: a connection lives in one process, and a count kept
// elsewhere would outlive a process that dies holding it. Behind a balancer of N instances a
// client can therefore hold up to N times each cap (docs/security.md, "Connections held").

export class ConnectionCaps {
  readonly #users = new Map<number, number>()
  readonly #addresses = new Map<string, number>()

  constructor (
    private readonly settings: Config['rateLimit'],
    /** Told of each refusal (metrics). */
    private readonly onRefuse: (request: FastifyRequest, limit: 'connections-account' | 'connections-address') => void = () => {}
  ) {}

  /**
   * Takes one connection for the request's user and address, and returns its release (safe to
   * call more than once); throws a 429 when either is at its cap. RATE_LIMIT=off counts nothing.
   */
  hold (request: FastifyRequest, reply: FastifyReply): () => void {
    if (!this.settings.enabled) return () => {}
    const { perUser, perAddress } = this.settings.connections
    const user = request.user.id
    const address = sourceKey(request.ip)
    const refuse = (whose: 'account' | 'address', cap: number): never => {
      reply.header('retry-after', RETRY_AFTER_SECONDS)
      this.onRefuse(request, `connections-${whose}`)
      throw new TooManyConnections(`this ${whose}`, cap)
    }
    if ((this.#users.get(user) ?? 0) >= perUser) refuse('account', perUser)
    if ((this.#addresses.get(address) ?? 0) >= perAddress) refuse('address', perAddress)
    add(this.#users, user, 1)
    add(this.#addresses, address, 1)
    let held = true
    return () => {
      if (!held) return
      held = false
      add(this.#users, user, -1)
      add(this.#addresses, address, -1)
    }
  }

  /** Connections held now by a user (for tests and diagnostics). */
  heldBy (userId: number): number {
    return this.#users.get(userId) ?? 0
  }
}

function add<K> (counts: Map<K, number>, key: K, delta: number): void {
  const count = (counts.get(key) ?? 0) + delta
  // a key at zero is dropped: the maps hold only who holds something
  if (count <= 0) counts.delete(key)
  else counts.set(key, count)
}
