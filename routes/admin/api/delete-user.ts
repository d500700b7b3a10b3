import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { deleteUser } from '../../../db/admin.js'
import { UserNotFound } from '../../errors.js'
import { adminBearer, errorReplies } from '../../schemas.js'
import { ActionReply, UserParams, consoleActor } from './schemas.js'

const deleteUserRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.delete('/users/:username', {
    schema: {
      summary: 'Erase a user as delete_account does: keys, requests, contacts and both copies of every message',
      tags: ['admin'],
      security: adminBearer,
      params: UserParams,
      response: { 200: ActionReply, ...errorReplies(400, 401, 404) }
    }
  }, async (request) => {
    const { username } = request.params
    if (await deleteUser(fastify.db, username, consoleActor(request)) === 'not_found') throw new UserNotFound(username)
    return { username, action: 'delete-user', changed: true }
  })
}

export default deleteUserRoute
