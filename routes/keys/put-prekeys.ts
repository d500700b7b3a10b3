import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { findIdentityKey, storeKeys } from '../../db/prekeys.js'
import { DeviceRemoved, InvalidSignature, NoIdentityKey, ValidationFailed } from '../../errors.js'
import { EC_PUBLIC_KEY, KYBER_PUBLIC_KEY, SIGNATURE, parseEcPublicKey, parseKyberPublicKey, parseSignature, verifyXEdDSA } from '../../xeddsa.js'
import { MessageReply, bearer, errorReplies } from '../schemas.js'
import { KyberPreKey, MAX_KEYS_PER_LIST, PreKey, SignedPreKey, decoded } from './schemas.js'

export const PutPrekeysBody = Type.Object({
  preKeys: Type.Optional(Type.Array(PreKey, { maxItems: MAX_KEYS_PER_LIST, description: 'EC one-time prekeys (unsigned); a non-empty list replaces the stored ones' })),
  signedPreKey: Type.Optional(SignedPreKey),
  pqPreKeys: Type.Optional(Type.Array(KyberPreKey, { maxItems: MAX_KEYS_PER_LIST, description: 'Kyber one-time prekeys, each signed; a non-empty list replaces the stored ones' })),
  pqLastResortPreKey: Type.Optional(KyberPreKey)
})

interface Signed { keyId: number, publicKey: string, signature: string }

// signatures checked between two turns of the event loop: 100 Kyber keys take about 0.2 s
const VERIFIES_PER_TURN = 10

const putPrekeys: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.put('/v1/keys', {
    schema: {
      summary: "Upload your device's prekeys",
      description: 'For the device of the token, in one transaction. Each list present and non-empty replaces the stored keys of its kind; ' +
        'a key absent is kept. Every signature (signedPreKey, pqLastResortPreKey, each of pqPreKeys) is checked against the account\'s ' +
        'identity key (XEdDSA): one bad signature is a 422 INVALID_SIGNATURE and nothing is stored. Set the identity key first (409 NO_IDENTITY_KEY). ' +
        'A one-time key whose keyId this device already handed out is left out, so that no key is handed out twice.',
      tags: ['keys'],
      security: bearer,
      body: PutPrekeysBody,
      response: { 200: MessageReply, ...errorReplies(400, 401, 409, 413, 415, 422) }
    },
    onRequest: fastify.authenticate
  }, async (request) => {
    const { preKeys, signedPreKey, pqPreKeys, pqLastResortPreKey } = request.body
    for (const [name, list] of [['preKeys', preKeys], ['pqPreKeys', pqPreKeys]] as const) {
      const seen = new Set<number>()
      for (const key of list ?? []) {
        if (seen.has(key.keyId)) throw new ValidationFailed(`body/${name} has keyId ${key.keyId} more than once`)
        seen.add(key.keyId)
      }
    }
    const identityKey = await findIdentityKey(fastify.db, request.user.id)
    if (identityKey === null) throw new NoIdentityKey()
    const identity = decoded(parseEcPublicKey(identityKey), 'the identity key', EC_PUBLIC_KEY.what)
    for (const key of preKeys ?? []) decoded(parseEcPublicKey(key.publicKey), 'body/preKeys/publicKey', EC_PUBLIC_KEY.what)
    const signed: Array<{ field: string, key: Signed, parse: (text: string) => Uint8Array | undefined, what: string }> = [
      ...signedPreKey === undefined ? [] : [{ field: 'signedPreKey', key: signedPreKey, parse: parseEcPublicKey, what: EC_PUBLIC_KEY.what }],
      ...pqLastResortPreKey === undefined ? [] : [{ field: 'pqLastResortPreKey', key: pqLastResortPreKey, parse: parseKyberPublicKey, what: KYBER_PUBLIC_KEY.what }],
      ...(pqPreKeys ?? []).map((key, index) => ({ field: `pqPreKeys/${index}`, key, parse: parseKyberPublicKey, what: KYBER_PUBLIC_KEY.what }))
    ]
    for (const [index, { field, key, parse, what }] of signed.entries()) {
      if (index > 0 && index % VERIFIES_PER_TURN === 0) await yieldToLoop()
      const publicKey = decoded(parse(key.publicKey), `body/${field}/publicKey`, what)
      const signature = decoded(parseSignature(key.signature), `body/${field}/signature`, SIGNATURE.what)
      if (!verifyXEdDSA(identity, publicKey, signature)) throw new InvalidSignature(field)
    }
    const outcome = await storeKeys(fastify.db, request.device.key, identityKey, { preKeys, signedPreKey, pqPreKeys, pqLastResortPreKey })
    if (outcome === 'device_gone') throw new DeviceRemoved()
    // the identity key changed while the signatures were checked: they were checked against the old one
    if (outcome === 'identity_changed') throw new InvalidSignature('the upload (the identity key changed meanwhile)')
    return { message: 'Keys stored.' }
  })
}

export default putPrekeys
