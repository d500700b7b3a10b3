import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { removeContact } from '../../db/contacts.js'
import { requireUser } from '../../db/users.js'
import { NotYourContact } from '../../errors.js'
import { MessageReply, Username, bearer, errorReplies } from '../schemas.js'

export const RemoveContactBody = Type.Object({ username: Username })

const removeContactRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/remove_contact', {
    schema: {
      summary: 'End a contact (from either side)',
      description: 'Neither of you can message the other until a new request is accepted. The conversation history stays. Both of you get a contact_removed event.',
      tags: ['contacts'],
      security: bearer,
      body: RemoveContactBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 404, 413, 415) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const other = await requireUser(fastify.db, request.body.username)
    if (!await removeContact(fastify.db, request.user, other)) throw new NotYourContact(other.username)
    await fastify.hub.publish([other.id, request.user.id])
    return { message: `${other.username} removed from your contacts.` }
  })
}

export default removeContactRoute
