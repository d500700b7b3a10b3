import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findUserKey } from '../../db/keys.js'
import { KeyNotFound, UserNotFound } from '../../errors.js'
import { Username, bearer, errorReplies } from '../schemas.js'

export const GetKeyQuery = Type.Object({ username: Username })
export const GetKeyReply = Type.Object({ username: Type.String(), public_key: Type.String() })

const getKey: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/get_key', {
    schema: {
      summary: "Fetch a user's public key",
      tags: ['keys'],
      security: bearer,
      querystring: GetKeyQuery,
      response: { 200: GetKeyReply, ...errorReplies(400, 401, 404) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const user = await findUserKey(fastify.db, request.query.username)
    if (user === undefined) throw new UserNotFound(request.query.username)
    if (user.public_key === null) throw new KeyNotFound(user.username)
    return { username: user.username, public_key: user.public_key }
  })
}

export default getKey
