import { randomBytes, randomInt } from 'node:crypto'
import { IdentityKeyPair, KEMKeyPair, PrivateKey, PublicKey } from '@signalapp/libsignal-client'
import t from 'tap'
import {
  base64Length, decodeBase64, EC_PUBLIC_KEY, KYBER_PUBLIC_KEY, parseEcPublicKey, parseKyberPublicKey,
  parseSignature, SIGNATURE, verifyXEdDSA
} from '../xeddsa.js'

// Vectors made with Signal's own library (a test-only dependency): what it signs, the
// server's pure-JS XEdDSA accepts, and what it refuses, the server refuses too.

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')

function flipBit (bytes: Uint8Array, bit: number): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(bytes)
  copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7))
  return copy
}

t.test('signatures libsignal makes verify: signed prekeys, Kyber keys, arbitrary messages', async t => {
  for (let i = 0; i < 20; i++) {
    const identity = IdentityKeyPair.generate()
    const idKey = identity.publicKey.serialize()
    const ec = PrivateKey.generate().getPublicKey().serialize()
    const kyber = KEMKeyPair.generate().getPublicKey().serialize()
    const message = new Uint8Array(randomBytes(randomInt(0, 200)))
    for (const signed of [ec, kyber, message]) {
      const signature = identity.privateKey.sign(signed)
      t.equal(identity.publicKey.verify(signed, signature), true)
      if (!verifyXEdDSA(idKey, signed, signature)) t.fail(`honest signature refused (${signed.length} bytes)`)
    }
  }
  t.pass('all 60 honest signatures verify')
})

t.test('flipped bits, a wrong key, an altered message and malformed inputs fail', async t => {
  const identity = IdentityKeyPair.generate()
  const idKey = identity.publicKey.serialize()
  const message = PrivateKey.generate().getPublicKey().serialize()
  const signature = identity.privateKey.sign(message)
  t.equal(verifyXEdDSA(idKey, message, signature), true)
  for (let bit = 0; bit < 512; bit++) {
    if (verifyXEdDSA(idKey, message, flipBit(signature, bit))) t.fail(`signature bit ${bit} flipped still verifies`)
  }
  for (let bit = 0; bit < message.length * 8; bit++) {
    if (verifyXEdDSA(idKey, flipBit(message, bit), signature)) t.fail(`message bit ${bit} flipped still verifies`)
  }
  // bits 8..262 are u (bit 263, the top bit of the last byte, is not part of it: RFC 7748)
  for (let bit = 8; bit < 263; bit++) {
    if (verifyXEdDSA(flipBit(idKey, bit), message, signature)) t.fail(`key bit ${bit} flipped still verifies`)
  }
  t.equal(verifyXEdDSA(IdentityKeyPair.generate().publicKey.serialize(), message, signature), false, 'another identity')
  t.equal(verifyXEdDSA(idKey, new Uint8Array([...message, 0]), signature), false, 'a byte appended')
  t.equal(verifyXEdDSA(idKey, message.subarray(1), signature), false, 'the type byte left out')
  t.equal(verifyXEdDSA(idKey.subarray(1), message, signature), false, 'a 32-byte key')
  t.equal(verifyXEdDSA(new Uint8Array([...idKey, 0]), message, signature), false, 'a 34-byte key')
  t.equal(verifyXEdDSA(new Uint8Array([0x08, ...idKey.subarray(1)]), message, signature), false, 'another type byte')
  t.equal(verifyXEdDSA(idKey, message, signature.subarray(0, 63)), false, 'a 63-byte signature')
  t.equal(verifyXEdDSA(idKey, message, new Uint8Array(64)), false, 'zeros')
  // u = p - 1 has no Edwards form; u = 0 and 1 are small-order points
  const uKey = (u: bigint): Uint8Array => {
    const key = new Uint8Array(33)
    key[0] = 0x05
    for (let i = 0; i < 32; i++) key[i + 1] = Number((u >> BigInt(8 * i)) & 0xffn)
    return key
  }
  for (const u of [2n ** 255n - 20n, 0n, 1n]) t.equal(verifyXEdDSA(uKey(u), message, signature), false, `u = ${u}`)
})

t.test('agrees with libsignal\'s own verify on a few hundred random cases', async t => {
  let agreed = 0
  let valid = 0
  const cases = 400
  for (let i = 0; i < cases; i++) {
    const identity = IdentityKeyPair.generate()
    let key = identity.publicKey.serialize()
    let message = new Uint8Array(randomBytes(randomInt(1, 100)))
    let signature = identity.privateKey.sign(message)
    switch (i % 5) {
      case 1: signature = flipBit(signature, randomInt(512)); break
      case 2: message = flipBit(message, randomInt(message.length * 8)); break
      case 3: key = IdentityKeyPair.generate().publicKey.serialize(); break
      case 4: key = flipBit(key, randomInt(8, 263)); break
    }
    let theirs: boolean
    try {
      theirs = PublicKey.deserialize(key).verify(message, signature)
    } catch {
      theirs = false // libsignal refuses to deserialize the key: not a signature it accepts
    }
    const ours = verifyXEdDSA(key, message, signature)
    if (ours === theirs) agreed++
    else t.fail(`case ${i}: libsignal ${String(theirs)}, ours ${String(ours)}`)
    if (ours) valid++
  }
  t.equal(agreed, cases)
  t.ok(valid >= cases / 5 && valid < cases, `${valid} valid, the others refused by both`)
})

t.test('the parsers take exact lengths of canonical standard base64 only', async t => {
  const ec = PrivateKey.generate().getPublicKey().serialize()
  const kyber = KEMKeyPair.generate().getPublicKey().serialize()
  const signature = IdentityKeyPair.generate().privateKey.sign(ec)
  t.equal(ec.length, EC_PUBLIC_KEY.bytes)
  t.equal(kyber.length, KYBER_PUBLIC_KEY.bytes)
  t.equal(signature.length, SIGNATURE.bytes)
  t.same(parseEcPublicKey(b64(ec)), ec)
  t.same(parseKyberPublicKey(b64(kyber)), kyber)
  t.same(parseSignature(b64(signature)), signature)
  t.equal(base64Length(33), 44)
  t.equal(base64Length(64), 88)
  t.equal(base64Length(1569), 2092)

  const cases: Array<[string, (text: string) => Uint8Array | undefined, string]> = [
    ['EC: 32 bytes', parseEcPublicKey, b64(ec.subarray(0, 32))],
    ['EC: 34 bytes', parseEcPublicKey, b64(new Uint8Array([...ec, 0]))],
    ['EC: type 0x08', parseEcPublicKey, b64(new Uint8Array([0x08, ...ec.subarray(1)]))],
    ['EC: url-safe letters', parseEcPublicKey, b64(ec).replace(/\+/g, '-').replace(/\//g, '_').replace(/^(.{10})./, '$1-')],
    ['EC: a space inside', parseEcPublicKey, `${b64(ec).slice(0, 20)} ${b64(ec).slice(21)}`],
    ['EC: a newline at the end', parseEcPublicKey, `${b64(ec).slice(0, 43)}\n`],
    ['EC: empty', parseEcPublicKey, ''],
    ['EC: hex', parseEcPublicKey, Buffer.from(ec).toString('hex')],
    ['Kyber: an EC key', parseKyberPublicKey, b64(ec)],
    ['Kyber: 1568 bytes', parseKyberPublicKey, b64(kyber.subarray(0, 1568))],
    ['Kyber: type 0x05', parseKyberPublicKey, b64(new Uint8Array([0x05, ...kyber.subarray(1)]))],
    ['signature: unpadded', parseSignature, b64(signature).replace(/=+$/, '')],
    ['signature: non-zero unused bits', parseSignature, b64(signature).replace(/.==$/, c => String.fromCharCode(c.charCodeAt(0) + 1) + '==')],
    ['signature: 65 bytes', parseSignature, b64(new Uint8Array([...signature, 1]))],
    ['signature: 63 bytes', parseSignature, b64(signature.subarray(1))]
  ]
  for (const [name, parse, text] of cases) t.equal(parse(text), undefined, name)
  t.equal(decodeBase64('QQ='), undefined, 'wrong padding')
  t.equal(decodeBase64('QR=='), undefined, 'unused bits set')
  t.same(decodeBase64('QQ=='), new Uint8Array([0x41]))
  t.same(decodeBase64(''), new Uint8Array(0))
})
