import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listContacts } from '../../db/contacts.js'
import { afterSession } from '../../plugins/app/auth.js'
import { bearer, errorReplies } from '../schemas.js'

export const ContactsReply = Type.Object({ contacts: Type.Array(Type.String()) })

const getContacts: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/get_contacts', {
    schema: {
      summary: 'List your accepted contacts (whoever asked first)',
      tags: ['contacts'],
      security: bearer,
      response: { 200: ContactsReply, ...errorReplies(401) }
    },
    onRequest: fastify.authenticateDeferred
  }, async (request) => ({ contacts: await afterSession(request, listContacts(fastify.db, request.user.id)) }))
}

export default getContacts
