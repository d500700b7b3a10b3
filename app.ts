import { Ajv } from 'ajv'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from './config.js'
import auth from './plugins/app/auth.js'
import configPlugin from './plugins/app/config.js'
import db from './plugins/app/db.js'
import errorHandler from './plugins/app/error-handler.js'
import hub from './plugins/app/hub.js'
import passwords from './plugins/app/passwords.js'
import retention from './plugins/app/retention.js'
import jwt from './plugins/external/jwt.js'
import rateLimit from './plugins/external/rate-limit.js'
import swagger from './plugins/external/swagger.js'
import websocket from './plugins/external/websocket.js'
import accounts from './routes/accounts/index.js'
import contacts from './routes/contacts/index.js'
import health from './routes/health/index.js'
import keys from './routes/keys/index.js'
import messages from './routes/messages/index.js'
import realtime from './routes/realtime/index.js'

// JSON bodies are typed strictly ({"public_key": true} is a 400, not the key "true");
// query strings are text, so they alone are converted to their declared types.
const ajvOptions = { useDefaults: true, removeAdditional: true, allErrors: false, strict: false } as const
const bodyAjv = new Ajv({ ...ajvOptions, coerceTypes: false })
const textAjv = new Ajv({ ...ajvOptions, coerceTypes: 'array' })

export function serverOptions (config: Config): FastifyServerOptions {
  return {
    logger: {
      level: config.logLevel,
      redact: {
        paths: ['req.headers.authorization', 'req.headers["sec-websocket-protocol"]', 'password', 'old_password', 'new_password', 'token', 'public_key', 'sender_blob', 'recipient_blob', 'encrypted_blob'],
        censor: '[redacted]'
      },
      // GET /ws?token=<jwt>: the token must not reach the logs with the URL
      serializers: {
        req: (request: FastifyRequest) => ({
          method: request.method,
          url: redactUrl(request.url),
          host: request.host,
          remoteAddress: request.ip,
          remotePort: request.socket?.remotePort
        })
      }
    },
    // a hop count is accepted at run time though the typings omit it
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    bodyLimit: config.bodyLimit,
    requestIdHeader: false,
    routerOptions: { ignoreTrailingSlash: true }
  }
}

export function redactUrl (url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]')
}

/** The whole server as one plugin: third-party wrappers, our decorators, then the routes. */
export async function app (fastify: FastifyInstance, opts: { config: Config }): Promise<void> {
  fastify.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema))
  await fastify.register(configPlugin, { config: opts.config })
  await fastify.register(errorHandler)
  await fastify.register(swagger)
  await fastify.register(jwt)
  await fastify.register(rateLimit)
  await fastify.register(websocket)
  await fastify.register(db)
  await fastify.register(passwords)
  await fastify.register(auth)
  await fastify.register(hub)
  await fastify.register(retention)

  await fastify.register(health)
  await fastify.register(accounts)
  await fastify.register(keys)
  await fastify.register(contacts)
  await fastify.register(messages)
  await fastify.register(realtime)
}

/** Builds a ready-to-listen server for the given configuration. */
export async function buildApp (config: Config, overrides: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const fastify = Fastify({ ...serverOptions(config), ...overrides })
  // not encapsulated, so that tests and tools reach its decorators (db, config, ...)
  await fastify.register(fp(app), { config })
  await fastify.ready()
  return fastify
}
