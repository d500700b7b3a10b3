import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { createHmac, randomBytes } from 'node:crypto'
import pino from 'pino'

// How the server logs: what is never written, the one line per request, and where lines go.

// Never in a log line: credentials, keys and ciphertext, at the top level of a log call or
// in the containers a log call would put them in ({ body: ... }, { req: { headers } }).
// Each path is spelt out: pino's redaction with a `*.field` wildcard cost about 14 µs a
// line (every request logs one) against about 1 µs for the same fields named. Under `req`
// the request serializer censors them itself (below): a path under `req` would make pino
// copy and search every request line's `req`, which is only { method, route }, about 3% of
// a small read's CPU.
const CENSOR = '[redacted]'
const SECRET_FIELDS = ['password', 'old_password', 'new_password', 'token', 'public_key', 'sender_blob', 'recipient_blob', 'encrypted_blob']
const SECRET_HEADER_NAMES = ['authorization', 'sec-websocket-protocol', 'cookie']
export const redactPaths = [
  ...SECRET_HEADER_NAMES.map(header => `headers["${header}"]`),
  ...SECRET_FIELDS,
  ...['body', 'query', 'params'].flatMap(container => SECRET_FIELDS.map(field => `${container}.${field}`))
]

/** `value` with each of its own fields named in `names` (any case) censored: a copy when one is there. */
function censored (value: unknown, names: readonly string[]): unknown {
  if (typeof value !== 'object' || value === null) return value
  let copy: Record<string, unknown> | undefined
  for (const key of Object.keys(value)) {
    if (names.includes(key.toLowerCase())) (copy ??= { ...value })[key] = CENSOR
  }
  return copy ?? value
}

/** Something a log call passed as `req` that is not a request: its headers, body and query censored as pino's paths would. */
function censoredReq (value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  const copy: Record<string, unknown> = { ...value }
  if ('headers' in copy) copy.headers = censored(copy.headers, SECRET_HEADER_NAMES)
  if ('body' in copy) copy.body = censored(copy.body, SECRET_FIELDS)
  if ('query' in copy) copy.query = censored(copy.query, SECRET_FIELDS)
  return copy
}

/** Whether a client's address is logged: not at all, as it is, or as a hash that changes each UTC day. */
export type ClientIpMode = 'off' | 'on' | 'hashed'

const DAY_MS = 86_400_000

/**
 * A client address as an opaque name valid for one UTC day: an HMAC under a random salt held
 * in memory and replaced when the day changes, so one day's lines of one address can be told
 * apart from another's but not linked to the address, to another day, or across a restart.
 */
export function clientHasher (now: () => number = Date.now): (address: string) => string {
  let day = -1
  let salt = Buffer.alloc(0)
  return address => {
    const today = Math.floor(now() / DAY_MS)
    if (today !== day) { day = today; salt = randomBytes(32) }
    return createHmac('sha256', salt).update(address).digest('base64url').slice(0, 16)
  }
}

// A query or path parameter whose name says it holds a credential, compared after decoding
const SECRET_NAME = /token|password|secret|auth/i
// three base64url segments: a JWT wherever it appears, whatever its parameter is called
const JWT_SHAPE = /[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g

/** Percent-decoding as often as it changes something (at most 4 times), lenient with bad escapes. */
function decodeFully (text: string): string {
  let out = text
  for (let i = 0; i < 4; i++) {
    const next = out.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    if (next === out) break
    out = next
  }
  return out
}

/**
 * The URL as the debug line shows it: decoded first, so no encoding (`?%74oken=`, `%3Ftoken=`
 * in the path, `Token=`) hides a credential from the redaction; then every value whose name
 * says credential, and anything shaped like a JWT, is replaced by [redacted].
 */
export function redactedUrl (url: string): string {
  return decodeFully(url)
    .split(/([?&;/#])/)
    .map(part => {
      const equals = part.indexOf('=')
      return equals > 0 && SECRET_NAME.test(part.slice(0, equals)) ? `${part.slice(0, equals + 1)}[redacted]` : part
    })
    .join('')
    .replace(JWT_SHAPE, '[redacted]')
}

/**
 * The request as every log line shows it: the method and the route's pattern
 * (`/admin/api/users/:username`, never the path a client sent nor its query string, which
 * name users and whom they read); the client's address only as LOG_CLIENT_IP says.
 */
function requestSerializer (clientIp: ClientIpMode): (request: FastifyRequest) => Record<string, unknown> {
  const hash = clientHasher()
  return request => {
    // a log call may pass anything as `req`: only a real request is reshaped, the rest censored
    if (typeof request?.url !== 'string') return censoredReq(request) as Record<string, unknown>
    const line: Record<string, unknown> = { method: request.method, route: request.routeOptions?.url ?? '(none)' }
    if (clientIp === 'on') line.remoteAddress = request.ip
    else if (clientIp === 'hashed') line.client = hash(request.ip)
    return line
  }
}

// Logs go to stdout without blocking, in writes of at least LOG_CHUNK bytes (pino's
// asynchronous logging, its docs/asynchronous.md): a write of its own for each line cost a
// thread-pool write and a wake-up of the event loop when it completed, about 20 µs of CPU a
// line more at a thousand requests a second (bench/HISTORY.md, 2026-12-02). Lines never wait
// much longer than LOG_FLUSH_MS: a timer writes what is pending. What is left is flushed when
// the process exits (pino registers that); a process killed outright loses at most the lines
// of its last LOG_FLUSH_MS. One destination per process.
//
// "Pending" is counted in bytes, accepted against written (sonic-boom's `write` event), and
// not kept as a flag cleared by the timer: sonic-boom's flush does nothing while a write is
// in flight, and when that write ends it writes again only if a chunk's worth is waiting. A
// flag cleared by a tick that fell within a write left the lines behind it unwritten until the
// next line came, which on an idle server was never (a server's "listening" line was lost so).
const LOG_CHUNK = 4096
export const LOG_FLUSH_MS = 100

/** A destination for log lines on `dest` (a file descriptor or path) written in chunks, with the timer that writes what waits. */
export function chunkedDestination (dest: number | string): ReturnType<typeof pino.destination> {
  const destination = pino.destination({ dest, sync: false, minLength: LOG_CHUNK })
  let accepted = 0
  let written = 0
  const write = destination.write.bind(destination)
  destination.write = (line: string) => {
    accepted += Buffer.byteLength(line)
    return write(line)
  }
  destination.on('write', (bytes: number) => { written += bytes })
  const timer = setInterval(() => {
    // while a write is in flight this does nothing, and the next tick tries again
    if (written < accepted) flushStream(destination)
  }, LOG_FLUSH_MS).unref()
  destination.once('close', () => { clearInterval(timer) })
  return destination
}

function flushStream (destination: ReturnType<typeof pino.destination>): void {
  try {
    destination.flush()
  } catch {
    // the destination has ended (the process exits): what it had was written then
  }
}

let logStream: ReturnType<typeof pino.destination> | undefined
function logDestination (): pino.DestinationStream {
  logStream ??= chunkedDestination(1)
  return logStream
}

/** Writes the log lines buffered so far now, unless a write is in flight (the timer writes them then). */
export function flushLog (): void {
  if (logStream !== undefined) flushStream(logStream)
}

type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>

/** The logger at `level`: secrets redacted, requests reduced to their route, written to stdout. */
export function loggerOptions (level: string, clientIp: ClientIpMode = 'off'): LoggerOptions {
  return {
    level,
    redact: { paths: redactPaths, censor: CENSOR },
    serializers: { req: requestSerializer(clientIp) },
    ...(level === 'silent' ? {} : { stream: logDestination() })
  }
}

const URL_LEVELS = new Set(['debug', 'trace'])

/**
 * One log line per request at `info`, when it completes, instead of Fastify's two (a third of
 * a small read's logging cost); the incoming line is kept at `debug` and below, where the
 * cost does not matter (a disabled level is a no-op), and it alone carries the URL, redacted.
 */
export class OneLineRequestLog extends LogController {
  override incomingRequest (request: FastifyRequest): void {
    if (URL_LEVELS.has(request.log.level)) request.log.debug({ req: request, url: redactedUrl(request.url) }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error != null) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }

  // Fastify's own 404 handler would log the URL as sent, query string and all
  override routeNotFound (request: FastifyRequest): void {
    request.log.info({ req: request }, 'route not found')
  }
}
