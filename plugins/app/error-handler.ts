import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import {
  BadRequest, Internal, isCatalogued, MalformedJson, MalformedUrl, PayloadTooLarge, RouteNotFound,
  UnsupportedMediaType, UrlTooLong, ValidationFailed
} from '../../errors.js'

// One error shape for every failure: { statusCode, error, message, code }, the code always
// one of the catalogue's (errors.ts). Client errors say what was wrong; server faults are
// logged and never described.

// Fastify's client errors under the names of our catalogue: FST_ERR_* codes are Fastify's
// internals and may change with it, so they never reach a client.
const FASTIFY_ERRORS: Record<string, new () => FastifyError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: PayloadTooLarge,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: UnsupportedMediaType,
  FST_ERR_CTP_INVALID_JSON_BODY: MalformedJson,
  FST_ERR_CTP_EMPTY_JSON_BODY: MalformedJson
}

/** What a client is told of an error: the status to send and an error of the catalogue. */
function answerFor (error: FastifyError): { statusCode: number, error: FastifyError } {
  if (isCatalogued(error)) return { statusCode: error.statusCode, error }
  const statusCode = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (statusCode >= 500) return { statusCode, error: new Internal() }
  if (error.validation !== undefined) return { statusCode, error: new ValidationFailed(error.message) }
  const Renamed = FASTIFY_ERRORS[error.code]
  // any other client error keeps its status and message under a code of ours
  return { statusCode, error: Renamed === undefined ? new BadRequest(error.message) : new Renamed() }
}

function answer (error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { statusCode, error: sent } = answerFor(error)
  if (sent instanceof Internal) request.log.error({ err: error }, 'request failed')
  // a few errors say more than their message, in fields of their own (errors.ts, withDetails)
  const details = (sent as { details?: Record<string, unknown> }).details
  return reply.status(statusCode).send({ ...details, statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message: sent.message, code: sent.code })
}

const pathOf = (request: FastifyRequest): string => request.url.split('?')[0] ?? ''

/**
 * Fastify's `frameworkErrors` server option: a URL the router cannot decode, or a path
 * parameter over its length limit, which Fastify would otherwise answer with its own codes.
 */
export function frameworkErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
    ? new UrlTooLong(pathOf(request))
    : error.code === 'FST_ERR_BAD_URL' ? new MalformedUrl(pathOf(request)) : error
  answer(known, request, reply)
}

export default fp(async function errorHandler (fastify) {
  fastify.setErrorHandler(function (error: FastifyError, request, reply) {
    // a request whose session was still being checked (authenticateDeferred) gets that
    // check's 401 rather than any other error: a token that no longer works learns nothing
    const checked = request.sessionChecked
    if (checked === null) return answer(error, request, reply)
    return checked.then(() => { answer(error, request, reply) }, (sessionError: FastifyError) => { answer(sessionError, request, reply) })
  })

  fastify.setNotFoundHandler(function (request, reply) {
    return answer(new RouteNotFound(request.method, pathOf(request)), request, reply)
  })
}, { name: 'error-handler' })
