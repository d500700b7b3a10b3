import { ed25519 } from '@noble/curves/ed25519.js'

// The key material of Signal's protocol as the server checks it, without Signal's library
// (AGPL-3.0, kept out of production): exact-length parsers of the serialized keys and
// XEdDSA verification of the signatures made with a Curve25519 identity key.
//
// Serialized forms (libsignal): an EC public key is 0x05 then 32 bytes (Montgomery u, little
// endian); a Kyber1024 public key is 0x08 then 1568 bytes; a signature is 64 bytes. The
// signed message is the whole serialized key, type byte included. libsignal's deserializers
// tolerate trailing bytes, so the lengths are checked here, exactly.

/** Serialized EC (Curve25519) public key: type byte 0x05 and 32 bytes. */
export const EC_PUBLIC_KEY = { bytes: 33, type: 0x05, what: 'a 33-byte EC public key (first byte 0x05)' } as const
/** Serialized Kyber1024 public key: type byte 0x08 and 1568 bytes. */
export const KYBER_PUBLIC_KEY = { bytes: 1569, type: 0x08, what: 'a 1569-byte Kyber1024 public key (first byte 0x08)' } as const
/** XEdDSA signature: 64 bytes. */
export const SIGNATURE = { bytes: 64, what: 'a 64-byte signature' } as const

/** The length of the padded standard base64 of `bytes` bytes. */
export function base64Length (bytes: number): number {
  return 4 * Math.ceil(bytes / 3)
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * The bytes of canonical standard base64 (RFC 4648 section 4, padded), or undefined. Node's
 * decoder skips what it does not understand and takes url-safe letters too; here anything
 * but the one encoding of the bytes (padding, unused bits zero) is refused, so that a key
 * has one spelling and what is stored is what was checked.
 */
export function decodeBase64 (text: string): Uint8Array | undefined {
  if (!BASE64.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64')
  if (bytes.toString('base64') !== text) return undefined
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
}

function parseExact (text: string, bytes: number, type?: number): Uint8Array | undefined {
  // the length check first: no decoding of an oversized string
  if (text.length !== base64Length(bytes)) return undefined
  const decoded = decodeBase64(text)
  if (decoded?.length !== bytes) return undefined
  if (type !== undefined && decoded[0] !== type) return undefined
  return decoded
}

/** A serialized EC public key from standard base64: exactly 33 bytes, 0x05 first; else undefined. */
export function parseEcPublicKey (text: string): Uint8Array | undefined {
  return parseExact(text, EC_PUBLIC_KEY.bytes, EC_PUBLIC_KEY.type)
}

/** A serialized Kyber1024 public key from standard base64: exactly 1569 bytes, 0x08 first; else undefined. */
export function parseKyberPublicKey (text: string): Uint8Array | undefined {
  return parseExact(text, KYBER_PUBLIC_KEY.bytes, KYBER_PUBLIC_KEY.type)
}

/** A signature from standard base64: exactly 64 bytes; else undefined. */
export function parseSignature (text: string): Uint8Array | undefined {
  return parseExact(text, SIGNATURE.bytes)
}

// the field of Curve25519 and Ed25519, p = 2^255 - 19
const Fp = ed25519.Point.Fp

function bytesToNumberLE (bytes: Uint8Array): bigint {
  let n = 0n
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] ?? 0)
  return n
}

/**
 * Verifies an XEdDSA signature (Signal's "XEdDSA and VXEdDSA" specification, as libsignal
 * checks it) of `message` by the serialized EC public key `publicKey` (33 bytes, 0x05 first).
 * The Montgomery u becomes the Edwards y = (u - 1) / (u + 1); the sign of x, which a
 * Montgomery key does not carry, is the top bit of the signature's last byte, which the
 * signer put there and which is cleared before the Ed25519 check. False for anything
 * malformed, never a throw.
 */
export function verifyXEdDSA (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== EC_PUBLIC_KEY.bytes || publicKey[0] !== EC_PUBLIC_KEY.type || signature.length !== SIGNATURE.bytes) return false
  const uBytes = publicKey.slice(1)
  // the top bit is not part of u (RFC 7748), and u is taken mod p, as libsignal does
  uBytes[31] = (uBytes[31] ?? 0) & 0x7f
  const u = Fp.create(bytesToNumberLE(uBytes))
  // u = -1 has no Edwards counterpart (division by zero)
  if (u === Fp.ORDER - 1n) return false
  const y = Fp.mul(Fp.sub(u, 1n), Fp.inv(Fp.add(u, 1n)))
  const edwards = new Uint8Array(32)
  let rest = y
  for (let i = 0; i < 32; i++) {
    edwards[i] = Number(rest & 0xffn)
    rest >>= 8n
  }
  const signBit = (signature[63] ?? 0) & 0x80
  edwards[31] = (edwards[31] ?? 0) | signBit
  const ed = signature.slice()
  ed[63] = (ed[63] ?? 0) & 0x7f
  try {
    // strict decoding (canonical encodings, no small-order key), as libsignal compares bytes
    return ed25519.verify(ed, message, edwards, { zip215: false })
  } catch {
    return false
  }
}
