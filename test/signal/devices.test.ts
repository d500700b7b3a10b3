import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { befriend, build, call, isError } from '../helper.js'
import { counts, fetchBundles, loginDevice, putIdentity, putKeys, receive, send, signUp, unique, type Device, type Secrets } from './api.js'
import { SignalClient, newRegistrationId } from './client.js'

// What Signal clients see when a device is reinstalled and when an account's identity key
// changes: the server drops what the old keys made possible, and a sender's client, told
// by the fresh bundle, starts over; what it held before no longer reaches anyone.

interface World { app: FastifyInstance, secrets: Secrets, alicePassword: string, alice1: Device, alice2: Device, bob: Device }

async function world (t: Test): Promise<World> {
  const app = await build(t)
  const secrets: Secrets = { passwords: [], plaintexts: [], clients: [] }
  const alicePassword = await signUp(t, app, secrets, 'alice')
  const alice1 = await loginDevice(t, app, secrets, 'alice', alicePassword, { id: 1 })
  const alice2 = await loginDevice(t, app, secrets, 'alice', alicePassword, { name: 'laptop' }, alice1.client.identity)
  const bob = await loginDevice(t, app, secrets, 'bob', await signUp(t, app, secrets, 'bob'), { id: 1 })
  await befriend(app, { name: 'alice', token: alice1.token }, { name: 'bob', token: bob.token })
  await putIdentity(t, app, alice1)
  await putIdentity(t, app, bob)
  for (const device of [alice1, alice2, bob]) await putKeys(t, app, device, device.client.generateKeys({ preKeys: 5, pqPreKeys: 5 }))
  return { app, secrets, alicePassword, alice1, alice2, bob }
}

t.test('a reinstalled device loses its keys and old sessions; senders see its new registrationId in the next bundle and reach it again', async t => {
  const { app, secrets, alicePassword, alice1, alice2, bob } = await world(t)
  const peer2 = { username: 'alice', deviceId: 2 }
  await bob.client.processBundles('alice', await fetchBundles(app, bob, 'alice', '*'))
  await send(t, app, secrets, bob, peer2, unique('before'))
  t.same(await receive(app, alice2, 'bob'), secrets.plaintexts.slice(-1), 'device 2 reads Bob before its reinstall')

  let registrationId = newRegistrationId()
  while (registrationId === alice2.client.registrationId) registrationId = newRegistrationId()
  const reinstalled = await loginDevice(t, app, secrets, 'alice', alicePassword, { id: 2, registrationId }, alice1.client.identity)
  isError(t, await call(app, alice2.token, { method: 'GET', url: '/v1/keys' }), 401)
  t.same(await counts(app, reinstalled), { count: 0, pqCount: 0 }, 'its one-time keys went with it')
  t.same((await fetchBundles(app, bob, 'alice', '*')).devices.map(device => device.deviceId), [1], 'until it uploads, alice/* leaves it out')
  isError(t, await call(app, bob.token, { method: 'GET', url: '/v1/keys/alice/2' }), 404, 'NO_PREKEYS')

  // Bob's old session still encrypts, but nothing on the reinstalled device can read it
  const lost = await send(t, app, secrets, bob, peer2, unique('lost'))
  await t.rejects(reinstalled.client.decrypt({ username: 'bob', deviceId: 1 }, lost), 'the reinstalled device cannot read the old session')
  reinstalled.read.set('bob', lost.id)

  await putKeys(t, app, reinstalled, reinstalled.client.generateKeys({ preKeys: 5, pqPreKeys: 5 }))
  const fresh = await fetchBundles(app, bob, 'alice', 2)
  t.equal(fresh.devices[0]?.registrationId, registrationId, 'the bundle carries the new registrationId')
  t.not(await bob.client.sessionRegistrationId(peer2), registrationId, 'which tells Bob his session is stale')
  bob.client.forgetSession(peer2)
  await bob.client.processBundles('alice', fresh)
  await send(t, app, secrets, bob, peer2, unique('after'))
  t.same(await receive(app, reinstalled, 'bob'), secrets.plaintexts.slice(-1), 'the reinstalled device reads the new session')
  await send(t, app, secrets, reinstalled, { username: 'bob', deviceId: 1 }, unique('back'))
  t.same(await receive(app, bob, 'alice'), secrets.plaintexts.slice(-1), 'and Bob its answer')
})

t.test('a changed identity key: every prekey goes, keys signed by the old one are refused, Bob is told, and his client starts over only once he accepts the new key', async t => {
  const { app, secrets, alicePassword, alice1, alice2, bob } = await world(t)
  const peer1 = { username: 'alice', deviceId: 1 }
  await bob.client.processBundles('alice', await fetchBundles(app, bob, 'alice', 1))
  await send(t, app, secrets, bob, peer1, unique('before'))
  t.same(await receive(app, alice1, 'bob'), secrets.plaintexts.slice(-1))
  const since = (await call(app, bob.token, { method: 'GET', url: '/sync' })).json().next as string

  // device 1 starts again with a new identity (its stores with it); its token stays
  const renewed: Device = { ...alice1, client: new SignalClient('alice', 1, undefined, alice1.client.registrationId), read: new Map(alice1.read) }
  secrets.clients.push(renewed.client)
  isError(t, await call(app, renewed.token, { method: 'PUT', url: '/v1/keys/identity', payload: renewed.client.identityBody() }), 400)
  t.equal((await call(app, renewed.token, { method: 'PUT', url: '/v1/keys/identity', payload: renewed.client.identityBody(alicePassword) })).statusCode, 200, 'with the password')
  isError(t, await call(app, bob.token, { method: 'GET', url: '/v1/keys/alice/*' }), 404, 'NO_PREKEYS')
  t.same(await counts(app, alice2), { count: 0, pqCount: 0 }, 'every prekey of every device went')
  const events = (await call(app, bob.token, { method: 'GET', url: `/sync?since=${since}` })).json().events as Array<{ type: string, username?: string }>
  t.ok(events.some(event => event.type === 'key_changed' && event.username === 'alice'), 'Bob gets key_changed')
  isError(t, await call(app, alice2.token, { method: 'PUT', url: '/v1/keys', payload: alice2.client.generateKeys({ preKeys: 2, pqPreKeys: 2 }) }), 422, 'INVALID_SIGNATURE')

  await putKeys(t, app, renewed, renewed.client.generateKeys({ preKeys: 5, pqPreKeys: 5 }))
  const reply = await fetchBundles(app, bob, 'alice', '*')
  t.equal(reply.identityKey, renewed.client.identityBody().identityKey, 'the new identity key')
  t.same(reply.devices.map(device => device.deviceId), [1], 'device 2 has no keys until it signs new ones')
  await t.rejects(bob.client.processBundles('alice', reply), 'Bob\'s client refuses a changed identity key on its own')
  bob.client.trustNewIdentity(peer1)
  await bob.client.processBundles('alice', await fetchBundles(app, bob, 'alice', 1))
  await send(t, app, secrets, bob, peer1, unique('after'))
  t.same(await receive(app, renewed, 'bob'), secrets.plaintexts.slice(-1), 'the renewed device reads Bob\'s new session')
})
