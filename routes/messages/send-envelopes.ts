import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findRecipient } from '../../db/contacts.js'
import { sendEnvelopes } from '../../db/envelopes.js'
import { iso } from '../../db/time.js'
import { usernameKey, type User } from '../../db/users.js'
import { ClientMsgIdReused, MismatchedDevices, NotAContact, StaleDevices, UserNotFound, ValidationFailed, withDetails } from '../../errors.js'
import { afterSession } from '../../plugins/app/auth.js'
import { ClientMsgId, DeviceId, ErrorReply, RegistrationId, Timestamp, Username, bearer, errorReplies } from '../schemas.js'

// Signal-Server's PUT /v1/messages/{destination}: one envelope per device, the device set
// checked when they are stored (409 for a device missing or extra, 410 for one registered
// again), each envelope deleted once its device acknowledges it.

const BASE64 = '^[A-Za-z0-9+/]*={0,2}$'

export const SendEnvelopesParams = Type.Object({ username: Username })
export const SendEnvelopesReply = Type.Object({
  id: Type.Integer({ description: 'this send\'s id: recipients acknowledge it, and `delivered` names it' }),
  timestamp: Timestamp
})
export const MismatchedDevicesReply = Type.Object({
  ...ErrorReply.properties,
  missingDevices: Type.Optional(Type.Array(Type.Integer(), { description: 'MISMATCHED_DEVICES: devices to add (fetch their bundles, GET /v1/keys/{username}/{deviceId})' })),
  extraDevices: Type.Optional(Type.Array(Type.Integer(), { description: 'MISMATCHED_DEVICES: devices that are not (or no longer) the recipient\'s: leave them out' }))
}, { description: 'Error: MISMATCHED_DEVICES (with the devices to add and to leave out), or CLIENT_MSG_ID_REUSED' })
export const StaleDevicesReply = Type.Object({
  ...ErrorReply.properties,
  staleDevices: Type.Array(Type.Integer(), { description: 'devices registered again since you fetched their bundles' })
}, { description: 'Error, with the devices registered again' })

/** Sync copies: a send to one's own name (in any case) goes to one's other devices. */
function toSelf (username: string, user: User): boolean {
  return usernameKey(username) === usernameKey(user.username)
}

const sendEnvelopesRoute: FastifyPluginAsyncTypebox = async (fastify) => {
  const { maxEnvelopeBytes, maxDevices } = fastify.config
  const maxChars = 4 * Math.ceil(maxEnvelopeBytes / 3)
  const Envelope = Type.Object({
    type: Type.Union([Type.Literal(1), Type.Literal(3)], { description: 'Signal\'s envelope type, passed through untouched: 1 ciphertext (a SignalMessage), 3 prekey bundle (a PreKeySignalMessage); 6 (sealed sender) is reserved' }),
    destinationDeviceId: DeviceId,
    destinationRegistrationId: RegistrationId,
    content: Type.String({ minLength: 4, maxLength: maxChars, pattern: BASE64, description: `standard base64, at most ${maxEnvelopeBytes} bytes decoded (MAX_ENVELOPE_BYTES)` })
  }, { additionalProperties: false })
  const SendEnvelopesBody = Type.Object({
    messages: Type.Array(Envelope, { minItems: 1, maxItems: 127, description: 'one per device of the recipient (to yourself: one per other device of yours)' }),
    client_msg_id: Type.Optional(ClientMsgId)
  })

  fastify.put('/v1/messages/:username', {
    schema: {
      summary: 'Send one envelope to each device of a contact (or to your own other devices)',
      description: 'Only between accepted contacts (403 NOT_A_CONTACT; one who blocked you gets the same), except to yourself: then the envelopes go to your other devices. ' +
        'The list must name each of the recipient\'s registered devices (those that logged in with a registrationId) once: otherwise 409 MISMATCHED_DEVICES with `missingDevices` and `extraDevices`; ' +
        'a `destinationRegistrationId` that is not the device\'s current one is a 410 STALE_DEVICES with `staleDevices`. Either way nothing is stored. ' +
        'Each device receives its envelope as an `envelope` event (GET /sync, GET /ws) and acknowledges it with POST /ack_messages {envelope_ids}: it is then deleted, and you get `delivered {message_ids, device}`. ' +
        'Nothing of it appears in get_messages. Limited as send_message is (per IP, per sender, per sender to one recipient).',
      tags: ['messages'],
      security: bearer,
      params: SendEnvelopesParams,
      body: SendEnvelopesBody,
      response: { 200: SendEnvelopesReply, 409: MismatchedDevicesReply, 410: StaleDevicesReply, ...errorReplies(400, 401, 403, 404, 413, 415, 429) }
    },
    // every device's copy in one body
    bodyLimit: maxDevices * (maxChars + 256) + 4096,
    // The recipient is read together with the session's lookup (on PostgreSQL one round trip
    // instead of two); the limits count, and anything is stored, only once the session is
    // known to be valid (authenticateDeferred, as send_message).
    onRequest: fastify.authenticateDeferred,
    config: { rateLimit: fastify.routeRateLimit('sendMessage') }
  }, async (request, reply) => {
    const { username } = request.params
    const { messages, client_msg_id: clientMsgId } = request.body
    const self = toSelf(username, request.user)
    const recipient = await afterSession(request, self ? Promise.resolve({ ...request.user, contact: true }) : findRecipient(fastify.db, request.user.id, username))
    // one's own devices are not a recipient to protect: sync copies count nowhere
    if (!self) await fastify.limitSendMessage(request, reply, username)
    const seen = new Set<number>()
    messages.forEach(({ destinationDeviceId: device, content }, index) => {
      if (seen.has(device)) throw new ValidationFailed(`body/messages/${index}/destinationDeviceId: device ${device} is named twice`)
      seen.add(device)
      const bytes = Buffer.from(content, 'base64')
      if (content.length % 4 !== 0 || bytes.toString('base64') !== content) throw new ValidationFailed(`body/messages/${index}/content: not canonical standard base64`)
      if (bytes.length > maxEnvelopeBytes) throw new ValidationFailed(`body/messages/${index}/content: longer than MAX_ENVELOPE_BYTES (${maxEnvelopeBytes}) decoded`)
    })
    if (recipient === undefined) throw new UserNotFound(username)
    if (!recipient.contact) throw new NotAContact(recipient.username)
    const outcome = await sendEnvelopes(fastify.db, request.user, request.device, { id: recipient.id, username: recipient.username }, messages, clientMsgId)
    if (outcome.kind === 'mismatch') throw withDetails(new MismatchedDevices(), { missingDevices: outcome.missingDevices, extraDevices: outcome.extraDevices })
    if (outcome.kind === 'stale') throw withDetails(new StaleDevices(), { staleDevices: outcome.staleDevices })
    if (outcome.kind === 'reused') throw new ClientMsgIdReused()
    if (outcome.kind === 'stored') await fastify.hub.publish([recipient.id], outcome.appended)
    return { id: outcome.id, timestamp: iso(outcome.created_at) }
  })
}

export default sendEnvelopesRoute
