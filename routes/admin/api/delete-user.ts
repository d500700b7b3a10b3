import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { eraseAudited } from '../../../db/admin.js'
import { requireUser } from '../../../db/users.js'
import { UserNotFound } from '../../../errors.js'
import { adminBearer, errorReplies } from '../../schemas.js'
import { ActionReply, UserParams, consoleActor } from './schemas.js'

const deleteUserRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.delete('/users/:username', {
    schema: {
      summary: 'Erase a user as delete_account does: keys, requests, contacts and both copies of every message',
      tags: ['admin'],
      security: adminBearer,
      params: UserParams,
      response: { 200: ActionReply, ...errorReplies(400, 401, 404, 429) }
    }
  }, async (request) => {
    const { username } = request.params
    const user = await requireUser(fastify.db, username)
    // gone meanwhile (another console or the CLI erased it first)
    const { outcome, notify } = await eraseAudited(fastify.db, user, consoleActor(request))
    if (outcome === 'not_found') throw new UserNotFound(username)
    // the console runs in the server: its sockets and long-polls end now, not at their next check
    await fastify.hub.disconnectUser(user.id)
    await fastify.hub.publish(notify)
    return { username, action: 'delete-user', changed: true }
  })
}

export default deleteUserRoute
