import { Type } from '@fastify/type-provider-typebox'
import { ValidationFailed } from '../../errors.js'
import { EC_PUBLIC_KEY, KYBER_PUBLIC_KEY, SIGNATURE, base64Length } from '../../xeddsa.js'

// The shapes of Signal-Server's /v2/keys, as this server takes them. Each key and signature
// is the standard base64 (RFC 4648 section 4, padded) of its exact serialized length; the
// patterns admit only that one spelling of the right number of bytes with the right type
// byte, so that what is stored is what was checked (xeddsa.ts decodes it again).

const B64 = '[A-Za-z0-9+/]'

/** 33 bytes, 0x05 first: 'B' then a letter carrying 01 and four bits of the next byte. */
export const EcPublicKey = Type.String({
  pattern: `^B[Q-Za-f]${B64}{${base64Length(EC_PUBLIC_KEY.bytes) - 2}}$`,
  minLength: base64Length(EC_PUBLIC_KEY.bytes),
  maxLength: base64Length(EC_PUBLIC_KEY.bytes),
  description: `standard base64 of ${EC_PUBLIC_KEY.what}`
})

/** 1569 bytes, 0x08 first: 'C' then a letter carrying 00 and four bits of the next byte. */
export const KyberPublicKey = Type.String({
  pattern: `^C[A-P]${B64}{${base64Length(KYBER_PUBLIC_KEY.bytes) - 2}}$`,
  minLength: base64Length(KYBER_PUBLIC_KEY.bytes),
  maxLength: base64Length(KYBER_PUBLIC_KEY.bytes),
  description: `standard base64 of ${KYBER_PUBLIC_KEY.what}`
})

/** 64 bytes: 85 letters, one whose low four bits are zero, and '=='. */
export const Signature = Type.String({
  pattern: `^${B64}{85}[AQgw]==$`,
  minLength: base64Length(SIGNATURE.bytes),
  maxLength: base64Length(SIGNATURE.bytes),
  description: `standard base64 of ${SIGNATURE.what} (XEdDSA, by the account's identity key, of the whole serialized public key)`
})

export const KeyId = Type.Integer({ minimum: 0, maximum: 2 ** 24 - 1, description: '0 to 2^24 - 1, chosen by the client' })

export const PreKey = Type.Object({ keyId: KeyId, publicKey: EcPublicKey })
export const SignedPreKey = Type.Object({ keyId: KeyId, publicKey: EcPublicKey, signature: Signature })
export const KyberPreKey = Type.Object({ keyId: KeyId, publicKey: KyberPublicKey, signature: Signature })

/** At most this many keys in one list, as Signal-Server. */
export const MAX_KEYS_PER_LIST = 100

/** The bytes a route's schema already admitted; a 400 naming the field should they not parse. */
export function decoded (bytes: Uint8Array | undefined, field: string, what: string): Uint8Array {
  if (bytes === undefined) throw new ValidationFailed(`${field} must be the standard base64 of ${what}`)
  return bytes
}
