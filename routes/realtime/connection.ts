import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import { AccountGone, CursorExpired, CursorUnknown, DeviceRemoved, Internal, isCatalogued, SessionEnded, TokenExpired } from '../../errors.js'
import { closes, type HubSignal } from '../../plugins/app/hub.js'
import type { WireFrame } from './events.js'
import type { StoredEvent } from '../../db/events.js'
import { formatCursor, readPage, startingSeq, toWire, type Reader } from './feed.js'

// One authenticated socket: replay from `since`, then push. Every wake-up re-reads the
// database from this socket's cursor, so a lost or duplicated hint costs nothing, unless
// it carries the very events that follow on from the cursor (committed on this instance),
// which are sent as they are; events are read one page at a time: the server never holds
// more than a page and the socket's bounded send buffer for a client.

export const CLOSE_SESSION_ENDED = 4401
export const CLOSE_RESYNC = 4410
const PAGE_SIZE = 100

export interface ConnectionOptions {
  /** Ping period; the session is checked again at each ping too. */
  pingIntervalMs: number
  bufferLimit: number
  drainTimeoutMs: number
}

export class Connection {
  #after = 0
  // true until the starting cursor is known: a wake-up before then only marks a rerun
  #pumping = true
  #again = false
  #ready = false
  #closed = false
  #alive = true
  // kept apart: each kind is cleared by its own function
  #intervals: NodeJS.Timeout[] = []
  #timeouts: NodeJS.Timeout[] = []
  #unsubscribe: (() => void) | undefined
  readonly #log: FastifyBaseLogger

  constructor (
    private readonly fastify: FastifyInstance,
    private readonly socket: WebSocket,
    private readonly reader: Reader,
    private readonly token: { jti: string, exp: number },
    /** Checks the socket's token again (throws its 401 once the session no longer works). */
    private readonly verify: () => Promise<unknown>,
    private readonly options: ConnectionOptions,
    log: FastifyBaseLogger
  ) {
    this.#log = log
  }

  async start (since: string | undefined): Promise<void> {
    const { socket } = this
    socket.on('close', () => this.#stop())
    socket.on('pong', () => { this.#alive = true })
    this.#every(this.options.pingIntervalMs, () => {
      // no pong since the last ping: the peer is gone
      if (!this.#alive) return this.#terminate('no pong')
      this.#alive = false
      socket.ping()
      // A session can end without a hub signal reaching us (the admin CLI is another
      // process; a hint between instances can be lost): its socket closes here at the latest.
      this.#recheck().catch(error => this.#crash(error))
    })
    const untilExpiry = this.token.exp * 1000 - Date.now()
    this.#timeouts.push(setTimeout(() => this.#fail(CLOSE_SESSION_ENDED, new TokenExpired()), Math.min(Math.max(untilExpiry, 0), 2 ** 31 - 1)))

    // subscribe before the first read, so that nothing committed meanwhile goes unnoticed
    const unsubscribe = await this.fastify.hub.subscribe(this.reader.user.id, signal => this.#onSignal(signal))
    if (this.#closed) return unsubscribe()
    this.#unsubscribe = unsubscribe
    try {
      this.#after = await startingSeq(this.fastify.db, this.reader.deviceKey, since)
    } catch (error) {
      if (error instanceof CursorExpired || error instanceof CursorUnknown) return this.#fail(CLOSE_RESYNC, error)
      if (error instanceof AccountGone || error instanceof DeviceRemoved) return this.#fail(CLOSE_SESSION_ENDED, error)
      return this.#crash(error)
    }
    this.#pumping = false
    await this.#pump().catch(error => this.#crash(error))
  }

  #onSignal (signal: HubSignal): void {
    if (signal.kind === 'news') {
      this.#pump(signal.events?.get(this.reader.deviceKey)).catch(error => this.#crash(error))
    } else if (closes(signal, this.token.jti, this.reader.deviceKey)) {
      this.#fail(CLOSE_SESSION_ENDED, new SessionEnded())
    }
  }

  async #recheck (): Promise<void> {
    try {
      await this.verify()
    } catch (error) {
      if (this.#closed) return
      // the token's 401 (revoked, expired, account gone or disabled) ends the socket with its code
      if (isCatalogued(error) && error.statusCode === 401) return this.#fail(CLOSE_SESSION_ENDED, error)
      // the database may be briefly unreachable: keep the socket, check again at the next ping
      this.#log.warn({ err: error, user_id: this.reader.user.id }, 'websocket session check failed')
    }
  }

  /**
   * Sends every event after the cursor; wake-ups during a run make it run again. `pushed`:
   * events this instance just committed for this device (see HubSignal), sent as they are
   * when they follow on from the cursor, instead of reading them back.
   */
  async #pump (pushed?: readonly StoredEvent[]): Promise<void> {
    if (this.#pumping) {
      this.#again = true
      return
    }
    this.#pumping = true
    try {
      if (pushed !== undefined && this.#ready && !await this.#sendPushed(pushed)) return
      do {
        this.#again = false
        let more = true
        while (more && !this.#closed) {
          const page = await readPage(this.fastify.db, this.reader, this.#after, PAGE_SIZE)
          this.fastify.metrics.socketEvents?.('read', page.events.length)
          for (const event of page.events) {
            if (!await this.#send(event)) return
          }
          this.#after = page.lastSeq
          more = page.hasMore
        }
        if (!this.#ready && !this.#closed) {
          this.#ready = true
          if (!await this.#send({ type: 'ready', cursor: formatCursor(this.reader.deviceKey, this.#after) })) return
        }
      } while (this.#again && !this.#closed)
    } finally {
      this.#pumping = false
    }
  }

  /**
   * Sends the pushed events after the cursor, moving it on, as long as they follow on from
   * it; then says whether to read (true: a gap, or a wake-up came meanwhile). Events at or
   * below the cursor were sent already (read back after an earlier wake-up).
   */
  async #sendPushed (pushed: readonly StoredEvent[]): Promise<boolean> {
    for (const event of pushed) {
      if (event.seq <= this.#after) continue
      if (event.seq !== this.#after + 1) return true
      const shown = toWire(this.reader, event)
      if (shown !== undefined) {
        this.fastify.metrics.socketEvents?.('pushed', 1)
        if (!await this.#send(shown)) return false
      }
      this.#after = event.seq
    }
    return this.#again
  }

  /**
   * Queues a frame; false once the socket is closed. Past the buffer limit it waits for
   * the peer to read; a peer that does not drain in time is dropped (it resumes from its
   * last cursor on reconnect).
   */
  async #send (frame: WireFrame): Promise<boolean> {
    if (this.#closed) return false
    const data = JSON.stringify(frame)
    // the usual case: room in the buffer, nothing to wait for (no callback, no promise)
    if (this.socket.bufferedAmount + Buffer.byteLength(data) <= this.options.bufferLimit) {
      this.socket.send(data)
      return !this.#closed
    }
    const flushed = new Promise<void>(resolve => this.socket.send(data, () => resolve()))
    let timer: NodeJS.Timeout | undefined
    const drained = await Promise.race([
      flushed.then(() => true),
      new Promise<false>(resolve => { timer = setTimeout(() => resolve(false), this.options.drainTimeoutMs) })
    ])
    clearTimeout(timer)
    if (!drained) {
      this.#terminate('slow consumer')
      return false
    }
    return !this.#closed
  }

  /** Sends the error frame (a code of the catalogue), then closes with its close code. */
  #fail (closeCode: number, error: { code: string, message: string }, message = error.message): void {
    if (this.#closed) return
    const { code } = error
    this.#log.info({ user_id: this.reader.user.id, code }, 'websocket closed by server')
    this.socket.send(JSON.stringify({ type: 'error', code, message } satisfies WireFrame))
    this.socket.close(closeCode, code)
    this.#stop()
  }

  #crash (error: unknown): void {
    if (this.#closed) return // e.g. a read cut short by the server shutting down
    this.#log.error({ err: error, user_id: this.reader.user.id }, 'websocket delivery failed')
    this.#fail(1011, new Internal(), 'Internal server error; reconnect with your last cursor.')
  }

  #terminate (reason: string): void {
    this.#log.info({ user_id: this.reader.user.id, reason }, 'websocket dropped')
    this.socket.terminate()
    this.#stop()
  }

  #every (ms: number, fn: () => void): void {
    this.#intervals.push(setInterval(fn, ms))
  }

  #stop (): void {
    this.#closed = true
    for (const timer of this.#intervals) clearInterval(timer)
    for (const timer of this.#timeouts) clearTimeout(timer)
    this.#intervals = []
    this.#timeouts = []
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
  }
}
