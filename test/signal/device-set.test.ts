import t from 'tap'
import { befriend, build, call, isError, snapshot } from '../helper.js'
import { fetchBundles, loginDevice, putIdentity, putKeys, signUp, unique, type Secrets } from './api.js'
import { newRegistrationId } from './client.js'
import { putMessages, readEnvelopes, sendMessage, shape } from './messages.js'

// Issue 14 with Signal's client library: a sender encrypts for the devices it holds sessions
// with, and the server holds it to the recipient's current devices. Bob adds a device: the
// send that leaves it out is refused with 409 naming it, and once the sender has fetched its
// bundle the send goes through and the new device decrypts. The device is registered again
// (a reinstall, a new registrationId): 410 naming it, until a fresh bundle. The device is
// removed: 409 naming it as extra, until the sender drops its session. Every refusal stores
// nothing, and the sessions the refused encryptions advanced still decrypt afterwards.

t.test('Bob adds a device, reinstalls it, removes it: Alice\'s sends are refused naming it until her client catches up, and every device decrypts', async t => {
  const app = await build(t)
  const secrets: Secrets = { passwords: [], plaintexts: [], clients: [] }
  const alice = await loginDevice(t, app, secrets, 'alice', await signUp(t, app, secrets, 'alice'), { id: 1 })
  const bobPassword = await signUp(t, app, secrets, 'bob')
  const bob1 = await loginDevice(t, app, secrets, 'bob', bobPassword, { id: 1 })
  await befriend(app, { name: 'alice', token: alice.token }, { name: 'bob', token: bob1.token })
  for (const device of [alice, bob1]) {
    await putIdentity(t, app, device)
    await putKeys(t, app, device, device.client.generateKeys({ preKeys: 5, pqPreKeys: 5 }))
  }
  await alice.client.processBundles('bob', await fetchBundles(app, alice, 'bob', '*'))
  const first = unique('first')
  t.same(shape(await sendMessage(t, app, secrets, alice, 'bob', first)), [[1, 3]])
  t.same(await readEnvelopes(t, app, bob1), [{ from: 'alice.1', type: 3, plaintext: first }])
  // Bob answers: Alice's client then knows the session is set up, and sends whisper messages on it
  const reply = unique('reply')
  t.same(shape(await sendMessage(t, app, secrets, bob1, 'alice', reply)), [[1, 1]])
  t.same(await readEnvelopes(t, app, alice), [{ from: 'bob.1', type: 1, plaintext: reply }])

  /** Alice's send of `text` to Bob, refused with `status` and `code`: the answer's body, with nothing stored. */
  const refused = async (text: string, status: number, code: string): Promise<Record<string, unknown>> => {
    const before = await snapshot(app)
    const { res } = await putMessages(app, secrets, alice, 'bob', text)
    isError(t, res, status, code)
    t.same(await snapshot(app), before, `${code}: nothing stored`)
    return res.json()
  }

  // Bob adds a device (his account's identity key, its own registrationId and prekeys)
  const bob2 = await loginDevice(t, app, secrets, 'bob', bobPassword, { name: unique('tablet') }, bob1.client.identity)
  t.equal(bob2.client.deviceId, 2)
  await putKeys(t, app, bob2, bob2.client.generateKeys({ preKeys: 5, pqPreKeys: 5 }))
  const added = unique('with the tablet')
  t.match(await refused(added, 409, 'MISMATCHED_DEVICES'), { missingDevices: [2], extraDevices: [] }, 'the send without it names it as missing')
  t.same(await alice.client.processBundles('bob', await fetchBundles(app, alice, 'bob', 2)), [{ username: 'bob', deviceId: 2 }], 'Alice fetches its bundle')
  t.same(shape(await sendMessage(t, app, secrets, alice, 'bob', added)), [[1, 1], [2, 3]], 'then the send goes through: a prekey message for the new device')
  t.same(await readEnvelopes(t, app, bob1), [{ from: 'alice.1', type: 1, plaintext: added }], 'device 1 decrypts (past the message the refused send encrypted)')
  t.same(await readEnvelopes(t, app, bob2), [{ from: 'alice.1', type: 3, plaintext: added }], 'the new device decrypts')
  const answer = unique('answer from the tablet')
  t.same(shape(await sendMessage(t, app, secrets, bob2, 'alice', answer)), [[1, 1]])
  t.same(await readEnvelopes(t, app, alice), [{ from: 'bob.2', type: 1, plaintext: answer }], 'and Alice decrypts its answer')

  // the tablet is reinstalled: registered again as device 2, with a new registrationId and new keys
  let registrationId = newRegistrationId()
  while (registrationId === bob2.client.registrationId) registrationId = newRegistrationId()
  const reinstalled = await loginDevice(t, app, secrets, 'bob', bobPassword, { id: 2, registrationId }, bob1.client.identity)
  isError(t, await call(app, bob2.token, { method: 'GET', url: '/v1/keys' }), 401)
  await putKeys(t, app, reinstalled, reinstalled.client.generateKeys({ preKeys: 5, pqPreKeys: 5 }))
  const afterReinstall = unique('after the reinstall')
  t.match(await refused(afterReinstall, 410, 'STALE_DEVICES'), { staleDevices: [2] }, 'Alice\'s session with it is stale: 410 names it')
  // as a Signal client does for a stale device: drop the session, fetch a fresh bundle
  alice.client.forgetSession({ username: 'bob', deviceId: 2 })
  const fresh = await fetchBundles(app, alice, 'bob', 2)
  t.equal(fresh.devices[0]?.registrationId, registrationId, 'the fresh bundle carries the new registrationId')
  await alice.client.processBundles('bob', fresh)
  t.same(shape(await sendMessage(t, app, secrets, alice, 'bob', afterReinstall)), [[1, 1], [2, 3]], 'then the send goes through')
  t.same(await readEnvelopes(t, app, bob1), [{ from: 'alice.1', type: 1, plaintext: afterReinstall }])
  t.same(await readEnvelopes(t, app, reinstalled), [{ from: 'alice.1', type: 3, plaintext: afterReinstall }], 'the reinstalled device decrypts')

  // Bob removes the tablet: Alice's send still covers it, and is refused naming it as extra
  t.equal((await call(app, bob1.token, { method: 'DELETE', url: '/v1/devices/2' })).statusCode, 200, 'Bob removes device 2')
  const afterRemoval = unique('after the removal')
  t.match(await refused(afterRemoval, 409, 'MISMATCHED_DEVICES'), { missingDevices: [], extraDevices: [2] }, 'the removed device is named as extra')
  alice.client.forgetSession({ username: 'bob', deviceId: 2 })
  t.same(shape(await sendMessage(t, app, secrets, alice, 'bob', afterRemoval)), [[1, 1]], 'without it, the send goes through')
  t.same(await readEnvelopes(t, app, bob1), [{ from: 'alice.1', type: 1, plaintext: afterRemoval }])
  t.equal((await app.db.selectFrom('envelopes').select('id').execute()).length, 0, 'every envelope acknowledged: none left')
})
