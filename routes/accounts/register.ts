import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { createUser } from '../../db/users.js'
import { UsernameTaken } from '../../errors.js'
import { MessageReply, NewPassword, Username, errorReplies, noToken } from '../schemas.js'

export const RegisterBody = Type.Object({ username: Username, password: NewPassword })

const register: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/register', {
    schema: {
      summary: 'Create an account',
      tags: ['accounts'],
      security: noToken,
      body: RegisterBody,
      response: { 201: MessageReply, ...errorReplies(400, 409, 413, 415, 429) }
    },
    config: { rateLimit: fastify.routeRateLimit('register') }
  }, async (request, reply) => {
    const { username, password } = request.body
    const user = await createUser(fastify.db, username, await fastify.passwords.hash(password))
    if (user === undefined) throw new UsernameTaken()
    return await reply.status(201).send({ message: 'User registered successfully.' })
  })
}

export default register
