import { existsSync, readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import t from 'tap'
import { buildApp } from '../../app.js'
import { adminEnv } from '../fixtures/admin.js'
import { truncateLog } from '../../db/connect.js'
import { befriend, call, capturedLogs, isError, postgresUrl, tableNames, testConfig } from '../helper.js'
import { counts, fetchBundles, loginDevice, putIdentity, putKeys, signUp, unique, type Device, type Secrets } from './api.js'
import { SignalClient, flipBit, type KeysBody } from './client.js'
import { readEnvelopes, sendMessage, shape, storedEnvelopes } from './messages.js'

// The proof with a real client (issues 13 and 14): devices made with Signal's own library
// publish their keys through the key API, a sender starts sessions from the bundles the
// server hands out, and ciphertexts travel as Signal's do, one envelope per device in one
// PUT /v1/messages, the sender's other devices getting theirs as sync copies; each device
// decrypts and acknowledges its own, and the server deletes it. Then the edges: an altered
// signature, 50 concurrent claims of one device's keys, a session on the last-resort key
// once the one-time keys ran out. Last, the database (its files' bytes on SQLite, every row
// on both) and the logs at their most verbose are scanned for every plaintext, private key
// and password the run used, and for every acknowledged ciphertext: none may be there.

/** A secret's forms as the server could hold them: raw bytes, standard and url-safe base64, hex. */
function keyForms (bytes: Uint8Array): Buffer[] {
  const raw = Buffer.from(bytes)
  return [raw, Buffer.from(raw.toString('base64')), Buffer.from(raw.toString('base64url')), Buffer.from(raw.toString('hex'))]
}

function needles (secrets: Secrets): Array<[string, Buffer[]]> {
  return [
    ...secrets.passwords.map((password, i): [string, Buffer[]] => [`password ${i + 1}`, [Buffer.from(password)]]),
    ...secrets.plaintexts.map((plaintext, i): [string, Buffer[]] => [`plaintext ${i + 1}`, [Buffer.from(plaintext)]]),
    ...(secrets.ciphertexts ?? []).map((content, i): [string, Buffer[]] => [`acknowledged envelope ${i + 1}`, [Buffer.from(content), Buffer.from(content, 'base64')]]),
    ...secrets.clients.flatMap(client => client.privateKeys.map((key, i): [string, Buffer[]] =>
      [`private key ${i + 1} of ${client.username}.${client.deviceId}`, keyForms(key)]))
  ]
}

/** Every value of every row of every table, bytes as they are and the rest as text. */
async function everyValue (app: FastifyInstance): Promise<Buffer> {
  const parts: Buffer[] = []
  for (const table of await tableNames(app.db)) {
    const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(app.db)
    for (const row of rows) for (const value of Object.values(row)) parts.push(Buffer.isBuffer(value) ? value : Buffer.from(String(value)), Buffer.from('\n'))
  }
  return Buffer.concat(parts)
}

t.test('Signal clients set up sessions through the key API, message through the server, and leave no secret behind', async t => {
  const env = await adminEnv(t) // a SQLite file (its bytes are scanned), or a PostgreSQL schema
  const config = await testConfig(t, { ...env, LOG_LEVEL: 'trace' })
  const { logger, lines } = capturedLogs(config)
  const app = await buildApp(config, { logger })
  t.teardown(async () => { await app.close() })
  const secrets: Secrets = { passwords: [], plaintexts: [], clients: [], ciphertexts: [] }

  // Alice: device 1 gets its registrationId by re-registering, device 2 is added; Bob: device 1
  const alicePassword = await signUp(t, app, secrets, 'alice')
  const alice1 = await loginDevice(t, app, secrets, 'alice', alicePassword, { id: 1 })
  const alice2 = await loginDevice(t, app, secrets, 'alice', alicePassword, { name: unique('laptop') }, alice1.client.identity)
  t.equal(alice2.client.deviceId, 2, 'the added device is device 2')
  const bob = await loginDevice(t, app, secrets, 'bob', await signUp(t, app, secrets, 'bob'), { id: 1 })
  await befriend(app, { name: 'alice', token: alice1.token }, { name: 'bob', token: bob.token })

  await putIdentity(t, app, alice1)
  await putIdentity(t, app, bob)
  const aliceKeys = new Map<number, KeysBody>()
  for (const device of [alice1, alice2, bob]) {
    const body = device.client.generateKeys({ preKeys: 10, pqPreKeys: 10 })
    if (device.username === 'alice') aliceKeys.set(device.client.deviceId, body)
    await putKeys(t, app, device, body)
    t.same(await counts(app, device), { count: 10, pqCount: 10 })
  }

  await t.test('Bob fetches alice/*, starts a session with each device; Alice and Bob talk both ways, one envelope per device, Alice\'s devices seeing each other\'s sends as sync copies', async t => {
    const reply = await fetchBundles(app, bob, 'alice', '*')
    t.equal(reply.identityKey, alice1.client.identityBody().identityKey, 'the account\'s identity key')
    t.same(reply.devices.map(device => device.deviceId).sort(), [1, 2])
    for (const device of reply.devices) {
      const uploaded = aliceKeys.get(device.deviceId)!
      t.equal(device.registrationId, (device.deviceId === 1 ? alice1 : alice2).client.registrationId, `device ${device.deviceId}: its registrationId`)
      t.same(device.signedPreKey, uploaded.signedPreKey, 'the signed prekey as uploaded')
      t.ok(uploaded.preKeys!.some(key => key.keyId === device.preKey?.keyId && key.publicKey === device.preKey.publicKey), 'one of its EC one-time keys')
      t.ok(uploaded.pqPreKeys!.some(key => key.keyId === device.pqPreKey.keyId && key.publicKey === device.pqPreKey.publicKey), 'one of its Kyber one-time keys')
    }
    await bob.client.processBundles('alice', reply)
    const hello = unique('hello alice')
    t.same(shape(await sendMessage(t, app, secrets, bob, 'alice', hello)), [[1, 3], [2, 3]], 'one prekey message for each of Alice\'s devices, in one request')
    t.ok((await everyValue(app)).includes(Buffer.from(secrets.ciphertexts![0]!)), 'stored until acknowledged: the last scan would find an envelope left behind')
    t.same(await counts(app, alice1), { count: 9, pqCount: 9 }, 'one key of each kind was claimed')
    t.same(await counts(app, alice2), { count: 9, pqCount: 9 })
    for (const device of [alice1, alice2]) t.same(await readEnvelopes(t, app, device), [{ from: 'bob.1', type: 3, plaintext: hello }], `device ${device.client.deviceId} decrypts its own`)

    // device 1 answers Bob, and starts a session with device 2 for the sync copy of what it sent
    const fromPhone = unique('hi bob from the phone')
    t.same(shape(await sendMessage(t, app, secrets, alice1, 'bob', fromPhone)), [[1, 1]], 'to Bob: a whisper message on the session he started')
    t.same(await alice1.client.processBundles('alice', await fetchBundles(app, alice1, 'alice', 2)), [{ username: 'alice', deviceId: 2 }], 'Alice\'s own device 2 bundle')
    t.same(shape(await sendMessage(t, app, secrets, alice1, 'alice', fromPhone)), [[2, 3]], 'the sync copy: to device 2 only, a prekey message')
    t.same(await readEnvelopes(t, app, alice2), [{ from: 'alice.1', type: 3, plaintext: fromPhone }], 'device 2 sees what device 1 sent')

    // device 2 answers Bob too, its sync copy to device 1 on the session device 1 started
    const fromLaptop = unique('hi bob from the laptop')
    t.same(shape(await sendMessage(t, app, secrets, alice2, 'bob', fromLaptop)), [[1, 1]])
    t.same(shape(await sendMessage(t, app, secrets, alice2, 'alice', fromLaptop)), [[1, 1]], 'the sync copy: to device 1 only')
    t.same(await readEnvelopes(t, app, alice1), [{ from: 'alice.2', type: 1, plaintext: fromLaptop }], 'device 1 sees what device 2 sent')
    t.same(await readEnvelopes(t, app, bob), [{ from: 'alice.1', type: 1, plaintext: fromPhone }, { from: 'alice.2', type: 1, plaintext: fromLaptop }], 'Bob decrypts both answers')

    const again = unique('and again')
    t.same(shape(await sendMessage(t, app, secrets, bob, 'alice', again)), [[1, 1], [2, 1]], 'answered: whisper messages')
    for (const device of [alice1, alice2]) t.same(await readEnvelopes(t, app, device), [{ from: 'bob.1', type: 1, plaintext: again }])
    t.same(await storedEnvelopes(app), { envelopes: 0, events: 0 }, 'each device acknowledged what it read: no envelope is left, nor its event')
  })

  await t.test('keys whose signature (or key) was altered before upload are refused with 422 and nothing is stored', async t => {
    const before = await counts(app, alice2)
    const fresh = (): KeysBody => alice2.client.generateKeys({ preKeys: 2, pqPreKeys: 2 })
    const altered: Array<[string, (body: KeysBody) => void]> = [
      ['the signed prekey\'s signature', body => { body.signedPreKey!.signature = flipBit(body.signedPreKey!.signature, 9) }],
      ['a Kyber one-time key\'s signature', body => { body.pqPreKeys![1]!.signature = flipBit(body.pqPreKeys![1]!.signature, 300) }],
      ['the last-resort key\'s signature', body => { body.pqLastResortPreKey!.signature = flipBit(body.pqLastResortPreKey!.signature, 511) }],
      ['the signed prekey itself', body => { body.signedPreKey!.publicKey = flipBit(body.signedPreKey!.publicKey, 8 * 5) }],
      ['a Kyber key itself', body => { body.pqPreKeys![0]!.publicKey = flipBit(body.pqPreKeys![0]!.publicKey, 8 * 100) }],
      ['signed by another identity', body => { body.signedPreKey = new SignalClient('mallory', 1).generateKeys({ preKeys: 0, pqPreKeys: 0, lastResort: false }).signedPreKey! }]
    ]
    for (const [what, alter] of altered) {
      const body = fresh()
      alter(body)
      const res = await call(app, alice2.token, { method: 'PUT', url: '/v1/keys', payload: body })
      isError(t, res, 422, 'INVALID_SIGNATURE')
      t.same(await counts(app, alice2), before, `${what}: nothing stored`)
    }
    const reply = await fetchBundles(app, bob, 'alice', 2)
    await bob.client.processBundles('alice', reply) // libsignal checks the signatures too: the stored ones are the honest ones
    t.same(await counts(app, alice2), { count: before.count - 1, pqCount: before.pqCount - 1 })
  })

  await t.test('50 concurrent fetches of one device\'s bundle, by 50 contacts, get 50 different one-time keys, each of which starts a session', async t => {
    const keys = alice1.client.generateKeys({ preKeys: 50, pqPreKeys: 50, signed: false, lastResort: false })
    await putKeys(t, app, alice1, keys)
    t.same(await counts(app, alice1), { count: 50, pqCount: 50 }, 'the new lists replaced the old ones')
    const requesters: Device[] = []
    for (let i = 0; i < 50; i++) {
      const name = `req${i}`
      const requester = await loginDevice(t, app, secrets, name, await signUp(t, app, secrets, name), { id: 1 })
      await befriend(app, { name, token: requester.token }, { name: 'alice', token: alice1.token })
      requesters.push(requester)
    }
    const replies = await Promise.all(requesters.map(async requester => await fetchBundles(app, requester, 'alice', 1)))
    const ec = replies.map(reply => reply.devices[0]?.preKey?.keyId)
    const kyber = replies.map(reply => reply.devices[0]?.pqPreKey.keyId)
    t.equal(new Set(ec).size, 50, '50 different EC one-time keys')
    t.equal(new Set(kyber).size, 50, '50 different Kyber one-time keys')
    t.same([...ec].sort(), keys.preKeys!.map(key => key.keyId).sort(), 'exactly the uploaded ones')
    t.same([...kyber].sort(), keys.pqPreKeys!.map(key => key.keyId).sort(), 'exactly the uploaded ones (never the last-resort key)')
    t.same(await counts(app, alice1), { count: 0, pqCount: 0 })
    // each claimed key works once: Alice's client deletes a one-time key as it uses it
    // (a send must cover her device 2 as well: its bundle is fetched one requester at a time)
    for (const [i, requester] of requesters.entries()) {
      await requester.client.processBundles('alice', replies[i]!)
      await requester.client.processBundles('alice', await fetchBundles(app, requester, 'alice', 2))
      const text = unique(`from ${requester.username}`)
      t.same(shape(await sendMessage(t, app, secrets, requester, 'alice', text)), [[1, 3], [2, 3]])
      const expected = [{ from: `${requester.username}.1`, type: 3, plaintext: text }]
      t.same(await readEnvelopes(t, app, alice1), expected, `Alice's device 1 decrypts ${requester.username}'s message`)
      t.same(await readEnvelopes(t, app, alice2), expected, 'and her device 2')
    }
  })

  await t.test('with the one-time keys gone, sessions still start on the signed prekey and the last-resort Kyber key', async t => {
    const lastResort = aliceKeys.get(1)!.pqLastResortPreKey!
    for (const name of ['carol', 'dave']) {
      const sender = await loginDevice(t, app, secrets, name, await signUp(t, app, secrets, name), { id: 1 })
      await befriend(app, { name, token: sender.token }, { name: 'alice', token: alice1.token })
      const reply = await fetchBundles(app, sender, 'alice', 1)
      t.equal(reply.devices[0]?.preKey, undefined, 'no EC one-time key')
      t.same(reply.devices[0]?.pqPreKey, lastResort, 'the last-resort Kyber key, as uploaded')
      await sender.client.processBundles('alice', reply)
      await sender.client.processBundles('alice', await fetchBundles(app, sender, 'alice', 2))
      const text = unique(`last resort from ${name}`)
      await sendMessage(t, app, secrets, sender, 'alice', text)
      t.same(await readEnvelopes(t, app, alice1), [{ from: `${name}.1`, type: 3, plaintext: text }], `Alice's device 1 decrypts ${name}'s message`)
      t.same((await readEnvelopes(t, app, alice2)).map(message => message.plaintext), [text], 'and her device 2')
    }
  })

  await t.test('neither the database nor the logs hold a plaintext, a private key, a password or an acknowledged envelope', async t => {
    t.same(await storedEnvelopes(app), { envelopes: 0, events: 0 }, 'every envelope was acknowledged and deleted')
    // as after an erasure: the WAL's old frames (which still hold deleted rows) are checkpointed and dropped
    t.ok(await truncateLog(app.db, 5000), 'the SQLite log is truncated')
    const rows = await everyValue(app)
    t.ok(rows.includes(Buffer.from(alice1.client.identityBody().identityKey)), 'the scan reads the rows: the public identity key is there')
    const log = Buffer.from(lines.map(line => JSON.stringify(line)).join('\n'))
    t.ok(lines.filter(line => line.msg === 'request completed').length > 200, `the scan reads the logs (${lines.length} lines)`)
    const file = env.DATABASE_URL!.startsWith('sqlite:') ? env.DATABASE_URL!.slice('sqlite:'.length) : undefined
    const disk = file === undefined ? undefined : Buffer.concat(['', '-wal', '-shm'].map(suffix => existsSync(file + suffix) ? readFileSync(file + suffix) : Buffer.alloc(0)))
    if (disk !== undefined) t.ok(disk.includes(Buffer.from(alice1.client.identityBody().identityKey)), 'the scan reads the SQLite files: the public identity key is there')
    const found: string[] = []
    for (const [what, forms] of needles(secrets)) {
      for (const form of forms) {
        if (rows.includes(form)) found.push(`${what} in a table`)
        if (log.includes(form)) found.push(`${what} in the logs`)
        if (disk?.includes(form) === true) found.push(`${what} in the SQLite files`)
      }
    }
    t.ok(needles(secrets).length > 50 + 3 + 50 + 2 + 2 * 52, `every secret is looked for (${needles(secrets).length})`)
    t.same(found, [], postgresUrl === undefined ? 'nothing found in the rows, the logs, the file, its WAL and shm' : 'nothing found in the rows and the logs')
  })
})
