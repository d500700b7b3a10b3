import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { purgeExpiredRevocations, revokeToken } from '../../db/sessions.js'
import { MessageReply, bearer, errorReplies } from '../schemas.js'

const logout: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/logout', {
    schema: {
      summary: 'Log out: the presented token stops working at once',
      description: 'Only this token is revoked (on every instance: the revocation is in the database); other sessions stay logged in.',
      tags: ['accounts'],
      security: bearer,
      response: { 200: MessageReply, ...errorReplies(400, 401, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    await revokeToken(fastify.db, request.token.jti, request.user.id, request.token.exp * 1000)
    // this session's sockets and long-polls end too (other sessions' stay)
    await fastify.hub.disconnectUser(request.user.id, { jti: request.token.jti })
    // revocations of tokens that have expired anyway go here, so the table stays small without a timer
    await purgeExpiredRevocations(fastify.db)
    return { message: 'Logged out.' }
  })
}

export default logout
