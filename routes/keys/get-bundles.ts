import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findRecipient } from '../../db/contacts.js'
import { claimBundles, listBundleDevices } from '../../db/prekeys.js'
import { NoPrekeys, NotAContact, UserNotFound } from '../../errors.js'
import { Username, bearer, errorReplies } from '../schemas.js'
import { EcPublicKey, KeyId, KyberPublicKey, Signature } from './schemas.js'

export const GetBundlesParams = Type.Object({
  username: Username,
  deviceId: Type.String({ pattern: '^(\\*|[1-9]|[1-9][0-9]|1[01][0-9]|12[0-7])$', description: 'a device number (1 to 127), or * for every device' })
})

export const BundleReply = Type.Object({
  identityKey: EcPublicKey,
  devices: Type.Array(Type.Object({
    deviceId: Type.Integer(),
    registrationId: Type.Integer(),
    signedPreKey: Type.Object({ keyId: KeyId, publicKey: EcPublicKey, signature: Signature }),
    preKey: Type.Optional(Type.Object({ keyId: KeyId, publicKey: EcPublicKey }, { description: 'absent when the device has no EC one-time key left' })),
    pqPreKey: Type.Object({ keyId: KeyId, publicKey: KyberPublicKey, signature: Signature }, { description: 'a Kyber one-time key, or the last-resort key when none is left' })
  }))
})

const getBundles: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/v1/keys/:username/:deviceId', {
    schema: {
      summary: "Claim prekey bundles of a contact's devices",
      description: 'Only an accepted contact, or the account itself (for its other devices), may fetch (403 NOT_A_CONTACT otherwise, a block included: it is never told apart). ' +
        'Each one-time key returned (EC and Kyber) is claimed: deleted as it is read, never handed out again. With no Kyber ' +
        'one-time key left the last-resort key is returned; with no EC one-time key left `preKey` is absent. A device without a ' +
        'registrationId, a signed prekey or a last-resort Kyber key has no bundle: it is left out of `*`, and asked for by number ' +
        'it is a 404 NO_PREKEYS, as is an account with no device to give. Limited per (your account, their device): RATE_LIMIT_PREKEYS, ' +
        'a bucket of 6 then one every 10 minutes by default, then 429 with retry-after. An unknown username is a 404 USER_NOT_FOUND ' +
        'counted against RATE_LIMIT_LOOKUPS.',
      tags: ['keys'],
      security: bearer,
      params: GetBundlesParams,
      response: { 200: BundleReply, ...errorReplies(400, 401, 403, 404, 429) }
    },
    onRequest: fastify.authenticate
  }, async (request, reply) => {
    const { username, deviceId } = request.params
    const other = await findRecipient(fastify.db, request.user.id, username)
    await fastify.limitLookup(request, reply, username, other)
    if (other === undefined) throw new UserNotFound(username)
    // your own account's other devices too: a client encrypts each message for them as well
    if (!other.contact && other.id !== request.user.id) throw new NotAContact(other.username)
    const devices = await listBundleDevices(fastify.db, other.id, deviceId === '*' ? undefined : Number(deviceId))
    if (devices.length === 0) throw new NoPrekeys(other.username, deviceId)
    await fastify.limitPrekeys(request, reply, other.username, devices.map(device => device.deviceId))
    const { identityKey, bundles, notify } = await claimBundles(fastify.db, other.id, devices)
    // an identity change (or the device's removal) since the devices were listed
    if (identityKey === null || bundles.length === 0) throw new NoPrekeys(other.username, deviceId)
    await fastify.hub.publish(notify)
    return { identityKey, devices: bundles }
  })
}

export default getBundles
