import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import pino from 'pino'

// How the server logs: what is never written, the one line per request, and where lines go.

// Never in a log line: credentials, keys and ciphertext, at the top level of a log call or
// in the containers a log call would put them in ({ body: ... }, { req: { headers } }).
// Each path is spelt out: pino's redaction with a `*.field` wildcard cost about 14 µs a
// line (every request logs one) against about 1 µs for the same fields named.
const SECRET_FIELDS = ['password', 'old_password', 'new_password', 'token', 'public_key', 'sender_blob', 'recipient_blob', 'encrypted_blob']
const SECRET_HEADERS = ['.authorization', '["sec-websocket-protocol"]', '.cookie']
export const redactPaths = [
  ...SECRET_HEADERS.flatMap(header => [`req.headers${header}`, `headers${header}`]),
  ...SECRET_FIELDS,
  ...['body', 'query', 'params', 'req.body', 'req.query'].flatMap(container => SECRET_FIELDS.map(field => `${container}.${field}`))
]

/** The request line as logged, with any credential in the query string (`?token=`) censored. */
function logRequest (request: FastifyRequest): Record<string, unknown> {
  // a log call may pass anything as `req`: only a real request is reshaped
  if (typeof request?.url !== 'string') return request as unknown as Record<string, unknown>
  return {
    method: request.method,
    url: request.url.replace(/([?&](?:token|access_token|password)=)[^&#]*/gi, '$1[redacted]'),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

// Logs go to stdout without blocking: a write in flight takes the lines logged meanwhile
// with it, and what is left is flushed when the process exits. One destination per process.
let logStream: pino.DestinationStream | undefined
function logDestination (): pino.DestinationStream {
  logStream ??= pino.destination({ dest: 1, sync: false })
  return logStream
}

type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>

/** The logger at `level`: secrets redacted, the request line censored, written to stdout. */
export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactPaths, censor: '[redacted]' },
    serializers: { req: logRequest },
    ...(level === 'silent' ? {} : { stream: logDestination() })
  }
}

/**
 * One log line per request at `info`, when it completes, instead of Fastify's two (a third of
 * a small read's logging cost); the incoming line is kept at `debug` and below, where the
 * cost does not matter (a disabled level is a no-op).
 */
export class OneLineRequestLog extends LogController {
  override incomingRequest (request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error != null) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}
