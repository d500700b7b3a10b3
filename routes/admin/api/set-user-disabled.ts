import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { setUserDisabled } from '../../../db/admin.js'
import { requireUser } from '../../../db/users.js'
import { UserNotFound } from '../../../errors.js'
import { adminBearer, errorReplies } from '../../schemas.js'
import { ActionReply, UserParams, consoleActor } from './schemas.js'

const setUserDisabledRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  for (const [action, disable] of [['disable', true], ['enable', false]] as const) {
    fastify.post(`/users/:username/${action}`, {
      schema: {
        summary: disable ? 'Disable a user: its logins are refused and its tokens stop working at once' : 'Let a disabled user log in again',
        tags: ['admin'],
        security: adminBearer,
        params: UserParams,
        response: { 200: ActionReply, ...errorReplies(400, 401, 404, 429) }
      }
    }, async (request) => {
      const { username } = request.params
      const user = await requireUser(fastify.db, username)
      const outcome = await setUserDisabled(fastify.db, user, disable, consoleActor(request))
      // gone meanwhile (erased between the lookup and the action)
      if (outcome === 'not_found') throw new UserNotFound(username)
      // a disabled user's tokens stop working: its sockets and long-polls end now
      if (disable && outcome === 'done') await fastify.hub.disconnectUser(user.id)
      return { username, action: `${action}-user`, changed: outcome === 'done' }
    })
  }
}

export default setUserDisabledRoutes
