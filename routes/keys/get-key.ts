import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { getPublicKey } from '../../db/keys.js'
import { findUserByName } from '../../db/users.js'
import { KeyNotFound, UserNotFound } from '../errors.js'
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
    const user = await findUserByName(fastify.db, request.query.username)
    if (user === undefined) throw new UserNotFound(request.query.username)
    const publicKey = await getPublicKey(fastify.db, user.id)
    if (publicKey === undefined) throw new KeyNotFound(user.username)
    return { username: user.username, public_key: publicKey }
  })
}

export default getKey
