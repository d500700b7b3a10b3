import { backoffDelay, sleep, type BackoffOptions } from './backoff.js'
import type { CryptaChatClient } from './client.js'
import { unwrap } from './client.js'
import { ApiError, isNetworkError } from './errors.js'
import type { StreamEvent } from './types.js'

/** Where the app keeps the cursor of the last event it processed (its database, localStorage, ...). */
export interface CursorStore {
  load: () => string | undefined | Promise<string | undefined>
  /** `undefined` after a resync: the stream starts again from the oldest event kept */
  save: (cursor: string | undefined) => void | Promise<void>
}

/** What a browser's WebSocket and the `ws` package's both have. */
export interface WebSocketLike {
  onopen: ((event: any) => void) | null
  onmessage: ((event: any) => void) | null
  onclose: ((event: any) => void) | null
  onerror: ((event: any) => void) | null
  close: (code?: number, reason?: string) => void
}
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike

export type SubscriptionState = 'connecting' | 'live' | 'polling' | 'waiting' | 'closed'

export interface SubscribeOptions {
  cursor: CursorStore
  /** Called for each event, one at a time, oldest first; the cursor moves past an event only after this returned (a throw: it comes again). */
  onEvent: (event: StreamEvent) => void | Promise<void>
  /**
   * The stored cursor is no longer valid (410 / close 4410: `CURSOR_EXPIRED`, older than what
   * retention kept, or `CURSOR_UNKNOWN`): fetch what you need again (`GET /get_messages` per
   * contact, `get_contacts`, ...). Afterwards the stream starts again from the oldest event kept.
   */
  onResync?: (code: string) => void | Promise<void>
  onStateChange?: (state: SubscriptionState) => void
  /** Errors along the way (a failed connection, a handler that threw); `fatal` when the subscription stopped for good (the session ended and no login could renew it). */
  onError?: (error: unknown, fatal: boolean) => void
  /** default: the global WebSocket (browsers, Node 22+); in Node 20 pass `ws`'s. Without one (or with `null`), the subscription long-polls. */
  WebSocket?: WebSocketConstructor | null
  /** default: the client's baseUrl with ws(s): and /ws */
  webSocketUrl?: string
  /** seconds one long-poll waits (default 30, the server's maximum) */
  pollTimeout?: number
  /** while long-polling because the WebSocket could not connect, try it again after this many milliseconds (default 60 000) */
  webSocketRetryMs?: number
  backoff?: BackoffOptions
}

type SocketEnd = { opened: boolean, code: number, errorCode?: string | undefined, failed?: unknown }

// WebSocket close codes of the server (docs/realtime.md)
const CLOSE_SESSION_ENDED = 4401
const CLOSE_RESYNC = 4410

/**
 * One device's event stream, kept up: a WebSocket from the stored cursor, reconnected with backoff
 * and jitter, replaced by long-polls (`GET /sync`) while it cannot connect; a new login when the
 * session ends (4401) and a resync when the cursor expired (4410). Nothing is missed and nothing
 * comes twice, as long as the app's cursor store keeps what it is given.
 */
export class Subscription {
  readonly #client: CryptaChatClient
  readonly #options: SubscribeOptions
  readonly #stop = new AbortController()
  readonly #done: Promise<void>
  readonly #onClosed: () => void
  #socket: WebSocketLike | undefined
  #state: SubscriptionState | undefined
  #socketRefusedAt: number | undefined

  constructor (client: CryptaChatClient, options: SubscribeOptions, onClosed: () => void) {
    this.#client = client
    this.#options = options
    this.#onClosed = onClosed
    // a new token (renewal): the socket reconnects with it at once, from the cursor
    const unlisten = client.onToken(() => this.#socket?.close(1000, 'token renewed'))
    this.#done = this.#run().finally(() => { unlisten(); this.#setState('closed'); this.#onClosed() })
  }

  get state (): SubscriptionState | undefined { return this.#state }

  /** Stops: the socket closes, a waiting long-poll is abandoned; resolves once the handler in progress (if any) returned. */
  async close (): Promise<void> {
    this.#stop.abort()
    this.#socket?.close(1000, 'closed by the client')
    await this.#done
  }

  async #run (): Promise<void> {
    let failures = 0
    while (!this.#stop.signal.aborted) {
      try {
        if (this.#useSocket()) {
          this.#setState('connecting')
          const end = await this.#connect()
          if (this.#stop.signal.aborted) return
          if (end.failed !== undefined) throw end.failed
          if (end.code === CLOSE_SESSION_ENDED) throw new ApiError(401, end.errorCode, 'the server ended the session')
          if (end.code === CLOSE_RESYNC) throw new ApiError(410, end.errorCode, 'the cursor must be reset')
          if (!end.opened) {
            // the socket could not connect: long-poll from here; a poll that fails too means the
            // server is down (not only the WebSocket), and then the socket is tried again first
            this.#socketRefusedAt = Date.now()
            this.#options.onError?.(new Error('the WebSocket could not connect; long-polling'), false)
            continue
          }
          failures = 0
          // 1000 after a renewal: at once; any other close (restart 1001, drop 1006, 1011): after a pause
          if (end.code === 1000) continue
          failures++
        } else {
          this.#setState('polling')
          await this.#poll()
          failures = 0
          continue
        }
      } catch (caught) {
        if (this.#stop.signal.aborted) return
        let error = caught
        if (error instanceof ApiError && error.status === 401) {
          if (!this.#client.canRenew) return this.#fatal(error)
          try {
            await this.#client.renew()
            continue
          } catch (loginError) {
            if (loginError instanceof ApiError && !loginError.transient) return this.#fatal(loginError)
            error = loginError
          }
        } else if (error instanceof ApiError && error.status === 410) {
          await this.#resync(error.code ?? 'CURSOR_EXPIRED')
          continue
        } else if (error instanceof ApiError && !error.transient) {
          return this.#fatal(error)
        }
        if (isNetworkError(error)) this.#socketRefusedAt = undefined
        this.#options.onError?.(error, false)
        failures++
        if (error instanceof ApiError && error.retryAfterSeconds !== undefined) {
          this.#setState('waiting')
          await sleep(error.retryAfterSeconds * 1000, this.#stop.signal)
          continue
        }
      }
      this.#setState('waiting')
      await sleep(backoffDelay(failures, this.#options.backoff), this.#stop.signal)
    }
  }

  #useSocket (): boolean {
    if (this.#webSocket() === undefined) return false
    return this.#socketRefusedAt === undefined || Date.now() - this.#socketRefusedAt >= (this.#options.webSocketRetryMs ?? 60_000)
  }

  #webSocket (): WebSocketConstructor | undefined {
    if (this.#options.WebSocket === null) return undefined
    return this.#options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  }

  async #resync (code: string): Promise<void> {
    await this.#options.onResync?.(code)
    await this.#options.cursor.save(undefined)
  }

  #fatal (error: unknown): void {
    this.#options.onError?.(error, true)
  }

  #setState (state: SubscriptionState): void {
    if (state === this.#state) return
    this.#state = state
    this.#options.onStateChange?.(state)
  }

  async #handle (event: StreamEvent): Promise<void> {
    await this.#options.onEvent(event)
    await this.#options.cursor.save(event.cursor)
  }

  /** One long-poll (`GET /sync`), its events handled; then at once the next. */
  async #poll (): Promise<void> {
    const since = await this.#options.cursor.load()
    const reply = unwrap(await this.#client.api.GET('/sync', {
      params: { query: { ...(since === undefined ? {} : { since }), timeout: this.#options.pollTimeout ?? 30, limit: 100 } },
      signal: this.#stop.signal
    }))
    for (const event of reply.events) {
      if (this.#stop.signal.aborted) return
      await this.#handle(event)
    }
    if (reply.next !== since) await this.#options.cursor.save(reply.next)
  }

  /** One WebSocket, from open to close; resolves once every frame it delivered was handled (or dropped, after a handler failed). */
  async #connect (): Promise<SocketEnd> {
    const Socket = this.#webSocket() as WebSocketConstructor
    const token = this.#client.token
    if (token === undefined) throw new ApiError(401, 'MISSING_TOKEN', 'not logged in')
    const since = await this.#options.cursor.load()
    const url = new URL(this.#options.webSocketUrl ?? this.#client.baseUrl.replace(/^http/, 'ws') + '/ws')
    if (since !== undefined) url.searchParams.set('since', since)
    const socket = new Socket(url.toString(), ['bearer', token])
    this.#socket = socket
    return await new Promise<SocketEnd>(resolve => {
      let opened = false
      let dropping = false
      let errorCode: string | undefined
      let failed: unknown
      let chain = Promise.resolve()
      socket.onopen = () => { opened = true }
      socket.onerror = () => {}
      socket.onmessage = (message: { data: unknown }) => {
        if (dropping) return
        chain = chain.then(async () => {
          if (dropping) return
          const frame = JSON.parse(String(message.data)) as StreamEvent | { type: 'ready', cursor: string } | { type: 'error', code: string }
          if (frame.type === 'error') { errorCode = frame.code; return }
          if (frame.type === 'ready') {
            this.#setState('live')
            await this.#options.cursor.save(frame.cursor)
            return
          }
          await this.#handle(frame)
        }).catch((error: unknown) => {
          // the event was not processed: drop what follows, reconnect from the last one that was
          dropping = true
          failed = error
          socket.close(1000, 'handler failed')
        })
      }
      socket.onclose = (event: { code: number }) => {
        // frames that came after a close we asked for (a renewal, close()) are replayed by the next socket
        if (this.#stop.signal.aborted || event.code === 1000) dropping = true
        if (this.#socket === socket) this.#socket = undefined
        chain.finally(() => { resolve({ opened, code: event.code, errorCode, failed }) })
      }
    })
  }
}
