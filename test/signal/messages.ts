import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { call } from '../helper.js'
import { unless, type Device, type Secrets } from './api.js'
import type { Envelope } from './client.js'

// Messages as Signal clients send them (issue 14): one PUT /v1/messages/{username} carries
// one envelope for each device the sender holds a session with (to one's own name: each of
// one's other devices, the sync copies), stamped with the registrationId that session was
// started with, so that the server can tell the sender which devices it misses (409) or
// which were registered again (410). Each device reads its envelopes from /sync and
// acknowledges them with ack_messages, which deletes them.

/** One element of `messages` in the body of `PUT /v1/messages/{username}`. */
export interface OutgoingMessage extends Envelope { destinationDeviceId: number, destinationRegistrationId: number }

/** An envelope as a device read it: from whom (`username.device`), its type, the decrypted text. */
export interface Received { from: string, type: number, plaintext: string }

/**
 * Encrypts `plaintext` for every device of `username` this device has a session with
 * (never itself) and puts them in one request, whatever the answer.
 */
export async function putMessages (
  app: FastifyInstance, secrets: Secrets, from: Device, username: string, plaintext: string
): Promise<{ res: LightMyRequestResponse, messages: OutgoingMessage[] }> {
  if (!secrets.plaintexts.includes(plaintext)) secrets.plaintexts.push(plaintext)
  const self = username === from.username
  const messages: OutgoingMessage[] = []
  for (const deviceId of from.client.sessionDevices(username).filter(id => !self || id !== from.client.deviceId)) {
    const peer = { username, deviceId }
    const destinationRegistrationId = await from.client.sessionRegistrationId(peer)
    if (destinationRegistrationId === undefined) throw new Error(`no session with ${username}.${deviceId}`)
    messages.push({ destinationDeviceId: deviceId, destinationRegistrationId, ...await from.client.encrypt(peer, plaintext) })
  }
  // the wire names the ciphertext `content`; the test keeps libsignal's `body` beside it
  const wire = messages.map(({ body, ...rest }) => ({ ...rest, content: body }))
  const res = await call(app, from.token, { method: 'PUT', url: `/v1/messages/${username}`, payload: { messages: wire } })
  if (res.statusCode === 200) secrets.ciphertexts?.push(...messages.map(message => message.body))
  return { res, messages }
}

/** putMessages, which must be accepted; returns the envelopes it sent. */
export async function sendMessage (t: Test, app: FastifyInstance, secrets: Secrets, from: Device, username: string, plaintext: string): Promise<OutgoingMessage[]> {
  const { res, messages } = await putMessages(app, secrets, from, username, plaintext)
  const to = messages.map(message => message.destinationDeviceId).join(', ')
  t.equal(res.statusCode, 200, `${from.username}.${from.client.deviceId} → ${username} (devices ${to})${unless(res, 200)}`)
  return messages
}

/** The destinations of a send and their Signal envelope types, for an assertion: `[[deviceId, type], ...]`. */
export const shape = (messages: OutgoingMessage[]): number[][] => messages.map(message => [message.destinationDeviceId, message.type])

/**
 * What this device has not read yet: the envelopes of its stream (/sync from its last
 * cursor, every page), decrypted in order, then acknowledged, which deletes them.
 */
export async function readEnvelopes (t: Test, app: FastifyInstance, device: Device): Promise<Received[]> {
  const received: Received[] = []
  const ids: number[] = []
  for (let more = true; more;) {
    const res = await call(app, device.token, { method: 'GET', url: '/sync', query: device.cursor === undefined ? {} : { since: device.cursor } })
    if (res.statusCode !== 200) throw new Error(`sync: ${res.statusCode} ${res.body}`)
    const page = res.json() as { events: Array<{ type: string, envelope?: { id: number, sourceUsername: string, sourceDevice: number, type: 1 | 3, content: string } }>, next: string, has_more: boolean }
    for (const { envelope } of page.events) {
      if (envelope === undefined) continue
      const plaintext = await device.client.decrypt({ username: envelope.sourceUsername, deviceId: envelope.sourceDevice }, { type: envelope.type, body: envelope.content })
      received.push({ from: `${envelope.sourceUsername}.${envelope.sourceDevice}`, type: envelope.type, plaintext })
      ids.push(envelope.id)
    }
    device.cursor = page.next
    more = page.has_more
  }
  if (ids.length > 0) {
    const ack = await call(app, device.token, { method: 'POST', url: '/ack_messages', payload: { envelope_ids: ids } })
    t.equal(ack.json().acknowledged, ids.length, `${device.username}.${device.client.deviceId} acknowledges what it read${unless(ack, 200)}`)
  }
  return received
}

/** The envelopes still stored for anyone, and their events. */
export async function storedEnvelopes (app: FastifyInstance): Promise<{ envelopes: number, events: number }> {
  const envelopes = await app.db.selectFrom('envelopes').select('id').execute()
  const events = await app.db.selectFrom('events').select('seq').where('type', '=', 'envelope').execute()
  return { envelopes: envelopes.length, events: events.length }
}
