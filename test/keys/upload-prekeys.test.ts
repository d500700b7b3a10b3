import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { build, call, isError, rowCounts, snapshot, user } from '../helper.js'
import { b64, ecKey, ids, kyberKey, newIdentity, signedEcKey, uploadBody, type Identity } from '../fixtures/prekeys.js'

const put = (payload: unknown): { method: 'PUT', url: string, payload: any } => ({ method: 'PUT', url: '/v1/keys', payload: payload as any })
const count = { method: 'GET' as const, url: '/v1/keys' }

/** An app with alice, whose identity key is set. */
async function withIdentity (t: Test): Promise<{ app: FastifyInstance, alice: string, identity: Identity }> {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const identity = newIdentity()
  await call(app, alice, { method: 'PUT', url: '/v1/keys/identity', payload: { identityKey: identity.key } })
  return { app, alice, identity }
}

/** The signature with one bit flipped (still 64 bytes of canonical base64). */
function altered (signature: string): string {
  const bytes = Buffer.from(signature, 'base64')
  bytes[10] = (bytes[10] ?? 0) ^ 1
  return bytes.toString('base64')
}

t.test('keys need an identity key first; then an upload is stored and counted', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const identity = newIdentity()
  isError(t, await call(app, alice, put(uploadBody(identity))), 409, 'NO_IDENTITY_KEY')
  t.same(await (await call(app, alice, count)).json(), { count: 0, pqCount: 0 })
  await call(app, alice, { method: 'PUT', url: '/v1/keys/identity', payload: { identityKey: identity.key } })
  const res = await call(app, alice, put(uploadBody(identity, { ec: 7, pq: 3 })))
  t.equal(res.statusCode, 200, res.body)
  t.same((await call(app, alice, count)).json(), { count: 7, pqCount: 3 })
  t.equal((await rowCounts(app)).signed_prekeys, 2, 'the signed prekey and the last-resort key')
  t.equal((await call(app, alice, put({}))).statusCode, 200, 'an empty upload changes nothing')
  t.same((await call(app, alice, count)).json(), { count: 7, pqCount: 3 })
})

t.test('a non-empty list replaces the keys of its kind; an empty or absent one keeps them', async t => {
  const { app, alice, identity } = await withIdentity(t)
  await call(app, alice, put(uploadBody(identity, { ec: 20, pq: 20 })))
  await call(app, alice, put({ preKeys: ids(100, 4).map(ecKey), pqPreKeys: [] }))
  t.same((await call(app, alice, count)).json(), { count: 4, pqCount: 20 })
  await call(app, alice, put({ pqPreKeys: ids(100, 2).map(id => kyberKey(identity, id)) }))
  t.same((await call(app, alice, count)).json(), { count: 4, pqCount: 2 })
  const rows = await app.db.selectFrom('one_time_prekeys').select(['kind', 'key_id']).orderBy('kind').orderBy('key_id').execute()
  t.same(rows.map(row => `${row.kind}:${Number(row.key_id)}`), ['ec:100', 'ec:101', 'ec:102', 'ec:103', 'kyber:100', 'kyber:101'])
  // a new signed prekey replaces the old one
  await call(app, alice, put({ signedPreKey: signedEcKey(identity, 42) }))
  const signed = await app.db.selectFrom('signed_prekeys').select(['kind', 'key_id']).orderBy('kind').execute()
  t.same(signed.map(row => `${row.kind}:${Number(row.key_id)}`), ['ec:42', 'kyber:9000'])
})

t.test('a bad signature anywhere is a 422 INVALID_SIGNATURE naming the key, and nothing is stored', async t => {
  const { app, alice, identity } = await withIdentity(t)
  const before = await snapshot(app)
  const other = newIdentity()
  const body = (): any => uploadBody(identity, { ec: 3, pq: 12 })
  const cases: Array<[string, (b: any) => void, RegExp]> = [
    ['signedPreKey altered', b => { b.signedPreKey.signature = altered(b.signedPreKey.signature) }, /signedPreKey/],
    ['signedPreKey by another identity', b => { b.signedPreKey = signedEcKey(other, 7000) }, /signedPreKey/],
    ['last resort altered', b => { b.pqLastResortPreKey.signature = altered(b.pqLastResortPreKey.signature) }, /pqLastResortPreKey/],
    ['the 12th Kyber key altered', b => { b.pqPreKeys[11].signature = altered(b.pqPreKeys[11].signature) }, /pqPreKeys\/11/],
    ['a Kyber key signed for another key', b => { b.pqPreKeys[0].signature = b.pqPreKeys[1].signature }, /pqPreKeys\/0/],
    ['the signed prekey signed as another EC key', b => { b.signedPreKey.publicKey = ecKey(7001).publicKey }, /signedPreKey/]
  ]
  for (const [name, spoil, field] of cases) {
    const payload = body()
    spoil(payload)
    const res = await call(app, alice, put(payload))
    isError(t, res, 422, 'INVALID_SIGNATURE')
    t.match(res.json().message, field, name)
  }
  t.same(await snapshot(app), before, 'nothing stored')
})

t.test('every malformed field is a 400 naming it, and nothing is stored', async t => {
  const { app, alice, identity } = await withIdentity(t)
  const before = await snapshot(app)
  const ec = ecKey(1)
  const signed = signedEcKey(identity, 2)
  const kyber = kyberKey(identity, 3)
  const cases: Array<[unknown, RegExp]> = [
    [{ preKeys: 'x' }, /preKeys/],
    [{ preKeys: [{ keyId: 1 }] }, /publicKey/],
    [{ preKeys: [{ publicKey: ec.publicKey }] }, /keyId/],
    [{ preKeys: [{ ...ec, keyId: -1 }] }, /keyId/],
    [{ preKeys: [{ ...ec, keyId: 2 ** 24 }] }, /keyId/],
    [{ preKeys: [{ ...ec, keyId: 1.5 }] }, /keyId/],
    [{ preKeys: [{ ...ec, keyId: '1' }] }, /keyId/],
    [{ preKeys: [{ ...ec, publicKey: ec.publicKey.slice(0, 43) }] }, /publicKey/],
    [{ preKeys: [{ ...ec, publicKey: `${ec.publicKey}A` }] }, /publicKey/],
    [{ preKeys: [{ ...ec, publicKey: kyber.publicKey }] }, /publicKey/],
    [{ preKeys: [{ ...ec, publicKey: b64(Buffer.concat([Buffer.from([0x08]), Buffer.from(ec.publicKey, 'base64').subarray(1)])) }] }, /publicKey/],
    [{ preKeys: [{ ...ec, publicKey: ec.publicKey.replace(/^B./, 'BA') }] }, /publicKey/],
    [{ preKeys: [ec, { ...ecKey(2), keyId: 1 }] }, /keyId 1 more than once/],
    [{ preKeys: ids(0, 101).map(ecKey) }, /preKeys/],
    [{ signedPreKey: { keyId: 2, publicKey: signed.publicKey } }, /signature/],
    [{ signedPreKey: { ...signed, signature: signed.signature.replace(/==$/, '') } }, /signature/],
    [{ signedPreKey: { ...signed, signature: signed.signature.replace(/.==$/, 'B==') } }, /signature/],
    [{ signedPreKey: { ...signed, signature: signed.signature.replace(/\+/g, '-').replace(/\//g, '_').replace(/^./, '-') } }, /signature/],
    [{ signedPreKey: { ...signed, signature: b64(Buffer.alloc(65)) } }, /signature/],
    [{ signedPreKey: { ...signed, publicKey: kyber.publicKey } }, /publicKey/],
    [{ signedPreKey: null }, /signedPreKey/],
    [{ pqLastResortPreKey: { ...kyber, publicKey: ec.publicKey } }, /publicKey/],
    [{ pqLastResortPreKey: { ...kyber, publicKey: kyber.publicKey.slice(4) } }, /publicKey/],
    [{ pqLastResortPreKey: { keyId: 3, publicKey: kyber.publicKey } }, /signature/],
    [{ pqPreKeys: [{ ...kyber, publicKey: `D${kyber.publicKey.slice(1)}` }] }, /publicKey/],
    [{ pqPreKeys: [kyber, kyber] }, /keyId 3 more than once/],
    [{ pqPreKeys: ids(0, 101).map(id => ({ ...kyber, keyId: id })) }, /pqPreKeys/],
    [{ pqPreKeys: [{ ...kyber, signature: 7 }] }, /signature/]
  ]
  for (const [payload, field] of cases) {
    const res = await call(app, alice, put(payload))
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, field, JSON.stringify(payload).slice(0, 80))
  }
  for (const payload of [[], null, 5]) isError(t, await call(app, alice, put(payload)), 400, 'VALIDATION_ERROR')
  t.same(await snapshot(app), before, 'nothing stored')
})

t.test('100 keys of each kind fit; the count is per device', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const identity = newIdentity()
  await call(app, alice, { method: 'PUT', url: '/v1/keys/identity', payload: { identityKey: identity.key } })
  const res = await call(app, alice, put(uploadBody(identity, { ec: 100, pq: 100, from: 2 ** 24 - 100 })))
  t.equal(res.statusCode, 200, res.body)
  t.same((await call(app, alice, count)).json(), { count: 100, pqCount: 100 })
  t.same((await call(app, bob, count)).json(), { count: 0, pqCount: 0 })
})
