import createClient, { type Client, type Middleware } from 'openapi-fetch'
import { backoffDelay, sleep, type BackoffOptions } from './backoff.js'
import { ApiError, isNetworkError } from './errors.js'
import type { paths } from './schema.js'
import { Subscription, type SubscribeOptions } from './subscription.js'
import type {
  AckBody, AckReply, Credentials, LoginReply, SendEnvelopesBody, SendEnvelopesReply, SendMessageBody, SendMessageReply
} from './types.js'

export interface ClientOptions {
  /** the server's base URL, e.g. `https://chat.example.org` */
  baseUrl: string
  /**
   * Asked for the username and password whenever the library must log in again: to renew the
   * token before it expires, and after the server ended the session (401, WebSocket close 4401).
   * The library never keeps them; without this callback a token is used until it stops working.
   */
  credentials?: () => Credentials | Promise<Credentials>
  /** renew this many seconds before the token expires (default: a tenth of its lifetime, at most 5 minutes) */
  renewBeforeSeconds?: number
  /** tries of a send that got no answer, a 5xx or a 429, each with the same client_msg_id (default 5) */
  sendAttempts?: number
  /** delays between those tries */
  retryBackoff?: BackoffOptions
  /** the fetch to use (default: the global one) */
  fetch?: typeof globalThis.fetch
}

// the routes that take no token
const PUBLIC = new Set(['/login', '/register', '/healthz', '/readyz'])

/** Data of an openapi-fetch result, or its error as an ApiError. */
export function unwrap<T> (result: { data?: T, error?: unknown, response: Response }): T {
  if (result.response.ok) return result.data as T
  throw ApiError.from(result.response, result.error)
}

/**
 * One account's connection to a CryptaChat server: every route typed from the server's OpenAPI
 * document (`api`), plus what every client needs: login with renewal, sends with a
 * `client_msg_id` retried safely, acks, and a subscription to the event stream.
 */
export class CryptaChatClient {
  /** every route of the server, typed; the token is added, and a 401 renews the session once and retries */
  readonly api: Client<paths>
  readonly baseUrl: string
  #token: string | undefined
  #deviceId: number | undefined
  #withDevice = false
  #renewTimer: ReturnType<typeof setTimeout> | undefined
  // after close() or logout(): no renewal until the app logs in again
  #stopped = false
  #relogin: Promise<void> | undefined
  readonly #tokenListeners = new Set<() => void>()
  readonly #subscriptions = new Set<Subscription>()
  readonly #options: ClientOptions

  constructor (options: ClientOptions) {
    this.#options = options
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.api = createClient<paths>({ baseUrl: this.baseUrl, ...(options.fetch === undefined ? {} : { fetch: options.fetch }) })
    this.api.use(this.#auth())
  }

  get token (): string | undefined { return this.#token }
  get deviceId (): number | undefined { return this.#deviceId }

  /**
   * `POST /login`. Without an argument the `credentials` callback is asked. With `device`, the
   * first login adds a device (or logs in device `id`); renewals log in that same device again.
   */
  async login (credentials?: Credentials): Promise<LoginReply> {
    this.#stopped = false
    return await this.#login(credentials)
  }

  async #login (credentials?: Credentials): Promise<LoginReply> {
    const given = credentials ?? await this.#options.credentials?.()
    if (given === undefined) throw new ApiError(401, 'NO_CREDENTIALS', 'No credentials: pass them to login() or give the client a credentials callback.')
    const body: Credentials = given.device === undefined || given.device.id !== undefined || this.#deviceId === undefined || !this.#withDevice
      ? given
      : { ...given, device: { ...given.device, id: this.#deviceId } }
    const reply = unwrap(await this.api.POST('/login', { body }))
    this.#withDevice = body.device !== undefined
    this.#setToken(reply.token, reply.device_id)
    this.#scheduleRenewal(reply.expires_in)
    return reply
  }

  /** Logs in again through the `credentials` callback; concurrent callers share one login. */
  async renew (): Promise<void> {
    this.#relogin ??= this.#login().then(() => undefined).finally(() => { this.#relogin = undefined })
    await this.#relogin
  }

  /** `POST /logout`: ends this token's session on the server, stops renewal and every subscription. */
  async logout (): Promise<void> {
    this.#stopped = true
    await Promise.all([...this.#subscriptions].map(async s => await s.close()))
    clearTimeout(this.#renewTimer)
    const token = this.#token
    if (token === undefined) return
    try {
      unwrap(await this.api.POST('/logout', { headers: { authorization: `Bearer ${token}` } }))
    } finally {
      this.#token = undefined
    }
  }

  /**
   * `POST /send_message` with a `client_msg_id` (a new UUID unless given). A try that gets no
   * answer, a 5xx or a 429 is repeated with the same id, so the message is stored once.
   */
  async sendMessage (body: SendMessageBody): Promise<SendMessageReply & { client_msg_id: string }> {
    const clientMsgId = body.client_msg_id ?? crypto.randomUUID()
    const reply = await this.#retried(async () => await this.api.POST('/send_message', { body: { ...body, client_msg_id: clientMsgId } }))
    return { ...reply, client_msg_id: clientMsgId }
  }

  /** `PUT /v1/messages/{username}` (one envelope per device), with a `client_msg_id` retried as sendMessage's. */
  async sendEnvelopes (username: string, body: SendEnvelopesBody): Promise<SendEnvelopesReply & { client_msg_id: string }> {
    const clientMsgId = body.client_msg_id ?? crypto.randomUUID()
    const reply = await this.#retried(async () => await this.api.PUT('/v1/messages/{username}', {
      params: { path: { username } },
      body: { ...body, client_msg_id: clientMsgId }
    }))
    return { ...reply, client_msg_id: clientMsgId }
  }

  /** `POST /ack_messages`: messages up to an id, and envelopes by id. */
  async ack (body: AckBody): Promise<AckReply> {
    return unwrap(await this.api.POST('/ack_messages', { body }))
  }

  /** Starts receiving the event stream (see Subscription). */
  subscribe (options: SubscribeOptions): Subscription {
    const subscription = new Subscription(this, options, () => this.#subscriptions.delete(subscription))
    this.#subscriptions.add(subscription)
    return subscription
  }

  /** Called (by subscriptions) whenever the token changes. */
  onToken (listener: () => void): () => void {
    this.#tokenListeners.add(listener)
    return () => this.#tokenListeners.delete(listener)
  }

  /** Whether a credentials callback lets the library log in again by itself. */
  get canRenew (): boolean { return this.#options.credentials !== undefined }

  /** Stops the renewal timer and every subscription, without logging out (the token stays valid). */
  async close (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#renewTimer)
    await Promise.all([...this.#subscriptions].map(async s => await s.close()))
  }

  #setToken (token: string, deviceId: number): void {
    this.#token = token
    this.#deviceId = deviceId
    for (const listener of this.#tokenListeners) listener()
  }

  #scheduleRenewal (expiresIn: number): void {
    clearTimeout(this.#renewTimer)
    if (!this.canRenew || this.#stopped) return
    const before = this.#options.renewBeforeSeconds ?? Math.min(300, expiresIn / 10)
    const renewAt = Date.now() + (expiresIn - before) * 1000
    const expiresAt = Date.now() + expiresIn * 1000
    const attempt = (): void => {
      if (this.#stopped) return
      this.#renewTimer = setTimeout(() => {
        this.renew().catch(() => {
          // no answer or a busy server: try again while the token lasts (a 401 later logs in again anyway)
          const left = expiresAt - Date.now()
          if (left > 1000) { this.#renewTimer = setTimeout(attempt, Math.min(30_000, left / 4)); this.#renewTimer.unref?.() }
        })
      }, Math.max(0, renewAt - Date.now()))
      // a timer alone keeps no Node process alive: the app's own work (or a subscription) does
      this.#renewTimer.unref?.()
    }
    attempt()
  }

  async #retried<T> (call: () => Promise<{ data?: T, error?: unknown, response: Response }>): Promise<T> {
    const attempts = Math.max(1, this.#options.sendAttempts ?? 5)
    for (let attempt = 1; ; attempt++) {
      try {
        return unwrap(await call())
      } catch (error) {
        const transient = isNetworkError(error) || (error instanceof ApiError && error.transient)
        if (!transient || attempt >= attempts) throw error
        const wait = error instanceof ApiError && error.retryAfterSeconds !== undefined
          ? error.retryAfterSeconds * 1000
          : backoffDelay(attempt, this.#options.retryBackoff)
        await sleep(wait)
      }
    }
  }

  // Adds the token to every route but the public ones; on a 401 (token expired, session ended)
  // logs in again through the credentials callback and repeats the request once.
  #auth (): Middleware {
    const copies = new Map<string, Request>()
    return {
      onRequest: ({ request, schemaPath, id }) => {
        if (PUBLIC.has(schemaPath) || request.headers.has('authorization') || this.#token === undefined) return undefined
        request.headers.set('authorization', `Bearer ${this.#token}`)
        if (this.canRenew) copies.set(id, request.clone())
        return request
      },
      onResponse: async ({ response, request, id, options }) => {
        const copy = copies.get(id)
        copies.delete(id)
        if (response.status !== 401 || copy === undefined) return undefined
        const used = request.headers.get('authorization')
        if (used === `Bearer ${this.#token ?? ''}`) await this.renew()
        copy.headers.set('authorization', `Bearer ${this.#token ?? ''}`)
        return await options.fetch(copy)
      },
      onError: ({ id }) => { copies.delete(id) }
    }
  }
}
