import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { Ajv } from 'ajv'
import Fastify, { type FastifyHttpOptions, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from './config.js'
import { OneLineRequestLog, loggerOptions } from './logging.js'
import accountLimits from './plugins/app/account-limits.js'
import auth from './plugins/app/auth.js'
import configPlugin from './plugins/app/config.js'
import db from './plugins/app/db.js'
import errorHandler, { frameworkErrors } from './plugins/app/error-handler.js'
import hub from './plugins/app/hub.js'
import metrics from './plugins/app/metrics.js'
import passwords from './plugins/app/passwords.js'
import prekeyLimit from './plugins/app/prekey-limit.js'
import retention from './plugins/app/retention.js'
import shutdown from './plugins/app/shutdown.js'
import cors from './plugins/external/cors.js'
import helmet from './plugins/external/helmet.js'
import jwt from './plugins/external/jwt.js'
import rateLimit from './plugins/external/rate-limit.js'
import swagger from './plugins/external/swagger.js'
import websocket from './plugins/external/websocket.js'
import accounts from './routes/accounts/index.js'
import admin from './routes/admin/index.js'
import contacts from './routes/contacts/index.js'
import devices from './routes/devices/index.js'
import health from './routes/health/index.js'
import keys from './routes/keys/index.js'
import messages from './routes/messages/index.js'
import realtime from './routes/realtime/index.js'

// JSON bodies are typed strictly ({"public_key": true} is a 400, not the key "true");
// query strings are text, so they alone are converted to their declared types.
const ajvOptions = { useDefaults: true, removeAdditional: true, allErrors: false, strict: false } as const
const bodyAjv = new Ajv({ ...ajvOptions, coerceTypes: false })
const textAjv = new Ajv({ ...ajvOptions, coerceTypes: 'array' })

export function serverOptions (config: Config): FastifyHttpOptions<Server> {
  return {
    logger: loggerOptions(config.logLevel, config.logClientIp),
    logController: new OneLineRequestLog(),
    trustProxy: trustProxy(config.trustProxy),
    bodyLimit: config.bodyLimit,
    // bounds on receiving a request, so that a client trickling its headers or body cannot
    // hold a connection: Node answers 408 and closes. They end once the request is read, so
    // a /sync long-poll waiting for its answer and an upgraded WebSocket are not cut.
    requestTimeout: config.timeouts.requestSeconds * 1000,
    keepAliveTimeout: config.timeouts.keepAliveSeconds * 1000,
    http: {
      requestTimeout: config.timeouts.requestSeconds * 1000,
      headersTimeout: config.timeouts.headersSeconds * 1000,
      // how often Node looks for expired requests (its default, 30 s, would let one run
      // up to 30 s past its bound)
      connectionsCheckingInterval: 1000
    },
    // our own ids (a client-sent x-request-id is not trusted); every log line of a request
    // carries it as reqId, and the reply returns it as x-request-id for support requests
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    routerOptions: { ignoreTrailingSlash: true },
    // errors the router answers before any route or error handler: in our error shape too
    frameworkErrors
  }
}

/**
 * Which peers are believed about the client's address (X-Forwarded-For). A hop count N
 * believes the N nearest hops: the client is the Nth address from the right of
 * [X-Forwarded-For..., peer]. Fastify 5 trusts nothing for a bare number, so it becomes the
 * function proxy-addr calls with each hop. `true` means one hop (the peer's own entry, never
 * the leftmost one, which a client writes): see docs/security.md.
 */
export function trustProxy (setting: Config['trustProxy']): FastifyServerOptions['trustProxy'] {
  if (setting === false) return false
  if (typeof setting === 'string') return setting
  const hops = setting === true ? 1 : setting
  return (_address: string, hop: number) => hop < hops
}

/** The whole server as one plugin: third-party wrappers, our decorators, then the routes. */
export async function app (fastify: FastifyInstance, opts: { config: Config }): Promise<void> {
  fastify.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema))
  await fastify.register(configPlugin, { config: opts.config })
  if (opts.config.trustProxy === true || typeof opts.config.trustProxy === 'number') {
    fastify.log.warn('TRUST_PROXY is %s: any client that reaches this server without passing the proxy chooses its own address; set the proxies\' addresses instead (docs/security.md)', String(opts.config.trustProxy))
  }
  await fastify.register(errorHandler)
  await fastify.register(shutdown)
  fastify.addHook('onRequest', async (request, reply) => { reply.header('x-request-id', request.id) })
  await fastify.register(helmet)
  await fastify.register(cors)
  await fastify.register(swagger)
  await fastify.register(jwt)
  await fastify.register(rateLimit)
  await fastify.register(websocket)
  await fastify.register(db)
  // before the hub and the routes, which report to it
  await fastify.register(metrics)
  await fastify.register(passwords)
  await fastify.register(auth)
  await fastify.register(accountLimits)
  await fastify.register(prekeyLimit)
  await fastify.register(hub)
  await fastify.register(retention)

  await fastify.register(health)
  await fastify.register(accounts)
  await fastify.register(devices)
  await fastify.register(keys)
  await fastify.register(contacts)
  await fastify.register(messages)
  await fastify.register(realtime)
  await fastify.register(admin)
}

/** Builds a ready-to-listen server for the given configuration. */
export async function buildApp (config: Config, overrides: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const fastify = Fastify({ ...serverOptions(config), ...overrides })
  // not encapsulated, so that tests and tools reach its decorators (db, config, ...)
  await fastify.register(fp(app), { config })
  await fastify.ready()
  return fastify
}
