import t from 'tap'
import { SignalClient, flipBit, unb64, type BundleReply, type DeviceBundleWire, type KeysBody } from './client.js'

// The test client on its own, without the server: what it uploads has the shapes the key
// API takes, and bundles built the way the server answers start sessions both ways. A
// stand-in for the server's claim (first key of each list, last-resort Kyber key when the
// one-time ones ran out) keeps this independent of the routes; test/signal/e2e.test.ts runs
// the same client against the server.

interface Published { registrationId: number, keys: KeysBody }

/** What the server answers for these devices, claiming one-time keys as it goes. */
function claim (identityKey: string, devices: Map<number, Published>): BundleReply {
  return {
    identityKey,
    devices: [...devices].map(([deviceId, { registrationId, keys }]): DeviceBundleWire => {
      const preKey = keys.preKeys?.shift()
      const pqPreKey = keys.pqPreKeys?.shift() ?? keys.pqLastResortPreKey
      if (keys.signedPreKey === undefined || pqPreKey === undefined) throw new Error('not a complete bundle')
      return { deviceId, registrationId, signedPreKey: keys.signedPreKey, ...(preKey === undefined ? {} : { preKey }), pqPreKey }
    })
  }
}

t.test('uploads have the exact shapes the key API takes: standard base64, 33-byte 0x05 EC keys, 1569-byte 0x08 Kyber keys, 64-byte signatures', async t => {
  const alice = new SignalClient('alice', 1)
  const identity = unb64(alice.identityBody().identityKey)
  t.equal(identity.length, 33)
  t.equal(identity[0], 0x05)
  t.same(alice.identityBody('pw'), { identityKey: alice.identityBody().identityKey, password: 'pw' })
  const keys = alice.generateKeys({ preKeys: 3, pqPreKeys: 2 })
  t.equal(keys.preKeys?.length, 3)
  t.equal(keys.pqPreKeys?.length, 2)
  const standard = /^[A-Za-z0-9+/]*={0,2}$/
  for (const key of [...keys.preKeys!, keys.signedPreKey!]) {
    t.match(key.publicKey, standard)
    t.equal(unb64(key.publicKey).length, 33)
    t.equal(unb64(key.publicKey)[0], 0x05)
  }
  for (const key of [...keys.pqPreKeys!, keys.pqLastResortPreKey!]) {
    t.match(key.publicKey, standard)
    t.equal(unb64(key.publicKey).length, 1569)
    t.equal(unb64(key.publicKey)[0], 0x08)
  }
  for (const key of [keys.signedPreKey!, ...keys.pqPreKeys!, keys.pqLastResortPreKey!]) {
    t.match(key.signature, standard)
    t.equal(unb64(key.signature).length, 64)
  }
  const ids = [...keys.preKeys!, keys.signedPreKey!, ...keys.pqPreKeys!, keys.pqLastResortPreKey!].map(key => key.keyId)
  t.equal(new Set(ids).size, ids.length, 'key ids are distinct')
  t.ok(ids.every(id => id >= 0 && id < 2 ** 24), 'key ids fit in 24 bits')
  const more = alice.generateKeys({ preKeys: 1, pqPreKeys: 0, signed: false, lastResort: false })
  t.same(Object.keys(more), ['preKeys'], 'a kind asked for 0 / false is left out')
  t.ok(more.preKeys![0]!.keyId > Math.max(...ids), 'a later batch never reuses an id')
  t.same(alice.generateKeys({ preKeys: 0, pqPreKeys: 0, signed: false, lastResort: false }), {})
  t.equal(alice.privateKeys.length, 1 + 3 + 1 + 2 + 1 + 1, 'every private key is remembered for the scans')
})

t.test('two devices sharing an identity and one sender: prekey messages both ways, then whisper messages', async t => {
  const alice1 = new SignalClient('alice', 1)
  const alice2 = new SignalClient('alice', 2, alice1.identity)
  const bob = new SignalClient('bob', 1)
  const published = new Map([[1, { registrationId: alice1.registrationId, keys: alice1.generateKeys() }], [2, { registrationId: alice2.registrationId, keys: alice2.generateKeys() }]])
  const peers = await bob.processBundles('alice', claim(alice1.identityBody().identityKey, published))
  t.same(peers, [{ username: 'alice', deviceId: 1 }, { username: 'alice', deviceId: 2 }])

  const first = await bob.encrypt(peers[0]!, 'hello alice 1')
  const second = await bob.encrypt(peers[1]!, 'hello alice 2')
  t.equal(first.type, 3, 'a new session sends prekey messages (Signal envelope type 3)')
  t.equal(second.type, 3)
  t.equal(await alice1.decrypt({ username: 'bob', deviceId: 1 }, first), 'hello alice 1')
  t.equal(await alice2.decrypt({ username: 'bob', deviceId: 1 }, second), 'hello alice 2')
  await t.rejects(alice2.decrypt({ username: 'bob', deviceId: 1 }, first), 'a device cannot read what was encrypted for the other')

  const reply = await alice1.encrypt({ username: 'bob', deviceId: 1 }, 'hi bob')
  t.equal(reply.type, 1, 'the answer on an established session is a whisper message (Signal envelope type 1)')
  t.equal(await bob.decrypt({ username: 'alice', deviceId: 1 }, reply), 'hi bob')
  const again = await bob.encrypt(peers[0]!, 'and again')
  t.equal(again.type, 1, 'once answered, the sender sends whisper messages')
  t.equal(await alice1.decrypt({ username: 'bob', deviceId: 1 }, again), 'and again')
})

t.test('without one-time keys left, sessions start on the signed prekey and the last-resort Kyber key, for several senders', async t => {
  const alice = new SignalClient('alice', 1)
  const keys = alice.generateKeys({ preKeys: 0, pqPreKeys: 0 })
  const published = new Map([[1, { registrationId: alice.registrationId, keys }]])
  for (const name of ['bob', 'carol']) {
    const sender = new SignalClient(name, 1)
    const reply = claim(alice.identityBody().identityKey, published)
    t.equal(reply.devices[0]?.preKey, undefined, 'no EC one-time key')
    t.equal(reply.devices[0]?.pqPreKey.keyId, keys.pqLastResortPreKey?.keyId, 'the last-resort key')
    await sender.processBundles('alice', reply)
    const message = await sender.encrypt({ username: 'alice', deviceId: 1 }, `from ${name}`)
    t.equal(await alice.decrypt({ username: name, deviceId: 1 }, message), `from ${name}`)
  }
  t.equal(alice.kyberPreKeys.records.size, 1, 'the last-resort key is kept')
})

t.test('a bundle whose signature was altered does not start a session', async t => {
  const alice = new SignalClient('alice', 1)
  const bob = new SignalClient('bob', 1)
  for (const which of ['signedPreKey', 'pqPreKey'] as const) {
    const reply = claim(alice.identityBody().identityKey, new Map([[1, { registrationId: alice.registrationId, keys: alice.generateKeys({ preKeys: 1, pqPreKeys: 1 }) }]]))
    const device = reply.devices[0]!
    device[which] = { ...device[which], signature: flipBit(device[which].signature, 77) }
    await t.rejects(bob.processBundles('alice', reply), `${which}: libsignal refuses it`)
  }
})
