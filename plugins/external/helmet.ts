import type { IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import * as helmetModule from 'helmet'
import type { HelmetOptions } from 'helmet'

// Security headers on every reply. The API only ever answers JSON, so the strict default
// CSP costs nothing; the Swagger UI under /docs and the admin console send their own.
//
// helmet's own headers, computed once: @fastify/helmet builds helmet's middleware anew on
// every request (each option parsed, the CSP rebuilt, two hooks), which measured about
// 50 µs of a 250 µs small read. Our headers never vary by request (no CSP nonces), so one
// hook sets the same list on every reply.

type Middleware = (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void
// helmet's default export, typed by hand: the TypeScript loader of the server-process tests
// resolves helmet's CommonJS typings, where the default import is the module object
const helmet = helmetModule.default as unknown as (options?: Readonly<HelmetOptions>) => Middleware

/** The headers helmet(options) sets, by lower-case name. */
export function helmetHeaders (options?: Readonly<HelmetOptions>): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader (name: string, value: unknown) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { Reflect.deleteProperty(headers, name.toLowerCase()) }
  }
  let finished = false
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, error => {
    if (error instanceof Error) throw error
    finished = true
  })
  // helmet's middleware is synchronous; a helmet that was not would leave replies bare
  if (!finished || Object.keys(headers).length === 0) throw new Error('helmet did not set its headers synchronously')
  return headers
}

export default fp(async function helmetPlugin (fastify) {
  const headers = helmetHeaders()
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.headers(headers)
    done()
  })
}, { name: 'helmet' })
