import { STATUS_CODES } from 'node:http'
import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'

// One error shape for every failure: { statusCode, error, message, code }.
// Client errors say what was wrong; server faults are logged and never described.

export default fp(async function errorHandler (fastify) {
  fastify.setErrorHandler(function (error: FastifyError, request, reply) {
    const statusCode = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500
    if (statusCode >= 500) {
      request.log.error({ err: error }, 'request failed')
      return reply.status(statusCode).send({ statusCode, error: STATUS_CODES[statusCode], message: 'Internal server error.', code: 'INTERNAL' })
    }
    const code = error.validation !== undefined ? 'VALIDATION_ERROR' : statusCode === 429 ? 'RATE_LIMITED' : error.code ?? 'ERROR'
    return reply.status(statusCode).send({ statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message: error.message, code })
  })

  fastify.setNotFoundHandler(function (request, reply) {
    return reply.status(404).send({ statusCode: 404, error: 'Not Found', message: `Route ${request.method} ${request.url.split('?')[0]} not found.`, code: 'ROUTE_NOT_FOUND' })
  })
}, { name: 'error-handler' })
