import { randomBytes } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { call, register } from '../helper.js'
import { SignalClient, newRegistrationId, type BundleReply, type DeviceMessage, type KeysBody, type Peer } from './client.js'

// The key API and the original API as the Signal test clients use them: accounts, devices
// logged in with a registrationId, key uploads, bundle fetches, and messages that travel
// over send_message one per device, tagged so that each device picks its own (the
// per-device messages of PUT /v1/messages are in messages.ts).

/** Everything the run must never leave on the server. */
export interface Secrets {
  passwords: string[]
  plaintexts: string[]
  clients: SignalClient[]
  /** The contents of the envelopes accepted by PUT /v1/messages, when a test checks they are gone once acknowledged. */
  ciphertexts?: string[]
}

export interface Device {
  username: string
  token: string
  client: SignalClient
  /** The last message id read, per conversation. */
  read: Map<string, number>
  /** Where its next /sync starts (messages.ts's readEnvelopes). */
  cursor?: string
}

export const unique = (label: string): string => `${label}-${randomBytes(8).toString('hex')}`

/** The answer's body when it is not the expected status, for the assertion's message (a success's body holds a token). */
export const unless = (res: LightMyRequestResponse, status: number): string => res.statusCode === status ? '' : `: ${res.body.slice(0, 200)}`

export async function signUp (t: Test, app: FastifyInstance, secrets: Secrets, username: string): Promise<string> {
  const password = unique('pw')
  secrets.passwords.push(password)
  t.equal((await register(app, username, password)).statusCode, 201, `${username} registers`)
  return password
}

/** Logs a device in with `device` in the /login body; returns it bound to the device id the server gave. */
export async function loginDevice (
  t: Test, app: FastifyInstance, secrets: Secrets, username: string, password: string,
  device: { id?: number, name?: string, registrationId?: number }, identity?: SignalClient['identity']
): Promise<Device> {
  const registrationId = device.registrationId ?? newRegistrationId()
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username, password, device: { ...device, registrationId } } })
  t.equal(res.statusCode, 200, `${username} logs in a device${unless(res, 200)}`)
  const deviceId: number = res.json().device_id
  if (device.id !== undefined) t.equal(deviceId, device.id, 're-registered as the device it named')
  const client = new SignalClient(username, deviceId, identity, registrationId)
  secrets.clients.push(client)
  return { username, token: res.json().token, client, read: new Map() }
}

export async function putIdentity (t: Test, app: FastifyInstance, device: Device): Promise<void> {
  const res = await call(app, device.token, { method: 'PUT', url: '/v1/keys/identity', payload: device.client.identityBody() })
  t.equal(res.statusCode, 200, `${device.username} sets the identity key${unless(res, 200)}`)
}

export async function putKeys (t: Test, app: FastifyInstance, device: Device, body: KeysBody): Promise<void> {
  const res = await call(app, device.token, { method: 'PUT', url: '/v1/keys', payload: body })
  t.equal(res.statusCode, 200, `${device.username}.${device.client.deviceId} uploads keys${unless(res, 200)}`)
}

export async function counts (app: FastifyInstance, device: Device): Promise<{ count: number, pqCount: number }> {
  const res = await call(app, device.token, { method: 'GET', url: '/v1/keys' })
  if (res.statusCode !== 200) throw new Error(`GET /v1/keys: ${res.statusCode} ${res.body}`)
  return res.json()
}

export async function fetchBundles (app: FastifyInstance, requester: Device, username: string, deviceId: number | '*'): Promise<BundleReply> {
  const res = await call(app, requester.token, { method: 'GET', url: `/v1/keys/${username}/${deviceId}` })
  if (res.statusCode !== 200) throw new Error(`GET /v1/keys/${username}/${deviceId}: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** Encrypts for one device of the recipient and sends it over send_message, tagged with both device ids; returns it with its stored id. */
export async function send (t: Test, app: FastifyInstance, secrets: Secrets, from: Device, to: Peer, plaintext: string): Promise<DeviceMessage & { id: number }> {
  secrets.plaintexts.push(plaintext)
  const message: DeviceMessage = { from: from.client.deviceId, to: to.deviceId, ...await from.client.encrypt(to, plaintext) }
  const blob = JSON.stringify(message)
  // the sender's own copy: a real client keeps its plaintext locally; the ciphertext stands in
  const res = await call(app, from.token, { method: 'POST', url: '/send_message', payload: { recipient_username: to.username, sender_blob: blob, recipient_blob: blob } })
  t.equal(res.statusCode, 201, `${from.username}.${from.client.deviceId} → ${to.username}.${to.deviceId}${unless(res, 201)}`)
  return { ...message, id: res.json().id }
}

/** What the device has not read yet from `from`: the messages tagged for it, decrypted, in order. */
export async function receive (app: FastifyInstance, device: Device, from: string): Promise<string[]> {
  const res = await call(app, device.token, { method: 'GET', url: `/get_messages?username=${from}&since_id=${device.read.get(from) ?? 0}` })
  if (res.statusCode !== 200) throw new Error(`get_messages: ${res.statusCode} ${res.body}`)
  const plaintexts: string[] = []
  for (const stored of res.json().messages as Array<{ id: number, sender_username: string, encrypted_blob: string }>) {
    device.read.set(from, stored.id)
    if (stored.sender_username !== from) continue
    const message = JSON.parse(stored.encrypted_blob) as DeviceMessage
    if (message.to !== device.client.deviceId) continue
    plaintexts.push(await device.client.decrypt({ username: from, deviceId: message.from }, message))
  }
  return plaintexts
}
