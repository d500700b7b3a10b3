import { randomInt } from 'node:crypto'
import * as signal from '@signalapp/libsignal-client'

// An in-memory client built on Signal's own library (@signalapp/libsignal-client, AGPL-3.0,
// a dev dependency: tests only), so that a test can prove the key API works with what real
// Signal clients send and expect, byte for byte. One SignalClient is one device: the
// identity key pair belongs to the account and is shared by its devices, as in Signal.

export type Bytes = Uint8Array<ArrayBuffer>

/** Standard base64 (with padding), as the key API takes and gives. */
export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
export const unb64 = (text: string): Bytes => new Uint8Array(Buffer.from(text, 'base64'))

export interface PreKeyWire { keyId: number, publicKey: string }
export interface SignedPreKeyWire extends PreKeyWire { signature: string }

/** The body of `PUT /v1/keys`. */
export interface KeysBody {
  preKeys?: PreKeyWire[]
  signedPreKey?: SignedPreKeyWire
  pqPreKeys?: SignedPreKeyWire[]
  pqLastResortPreKey?: SignedPreKeyWire
}

export interface DeviceBundleWire {
  deviceId: number
  registrationId: number
  signedPreKey: SignedPreKeyWire
  preKey?: PreKeyWire
  pqPreKey: SignedPreKeyWire
}

/** The answer of `GET /v1/keys/{username}/{deviceId|*}`. */
export interface BundleReply { identityKey: string, devices: DeviceBundleWire[] }

/**
 * A ciphertext as it travels: Signal's envelope types, not libsignal's message types
 * (libsignal says 3 for a prekey message and 2 for a whisper message; Signal's envelopes
 * say 3 PREKEY_BUNDLE and 1 CIPHERTEXT). The mapping is explicit so that a mix-up fails.
 */
export interface Envelope { type: 1 | 3, body: string }

/** A registrationId as Signal clients pick it: 1 to 16380. */
export const newRegistrationId = (): number => randomInt(1, 16381)

const addressKey = (address: signal.ProtocolAddress): string => `${address.name()}.${address.deviceId()}`

class MemorySessionStore extends signal.SessionStore {
  // serialized, as libsignal's own stores keep them: a record is read fresh each time
  private readonly sessions = new Map<string, Bytes>()

  async saveSession (name: signal.ProtocolAddress, record: signal.SessionRecord): Promise<void> {
    this.sessions.set(addressKey(name), record.serialize())
  }

  async getSession (name: signal.ProtocolAddress): Promise<signal.SessionRecord | null> {
    const bytes = this.sessions.get(addressKey(name))
    return bytes === undefined ? null : signal.SessionRecord.deserialize(bytes)
  }

  delete (name: signal.ProtocolAddress): void { this.sessions.delete(addressKey(name)) }

  /** The devices of `username` this store holds a session with, in order. */
  devicesOf (username: string): number[] {
    return [...this.sessions.keys()].filter(key => key.slice(0, key.lastIndexOf('.')) === username)
      .map(key => Number(key.slice(key.lastIndexOf('.') + 1))).sort((a, b) => a - b)
  }

  async getExistingSessions (addresses: signal.ProtocolAddress[]): Promise<signal.SessionRecord[]> {
    return await Promise.all(addresses.map(async address => {
      const record = await this.getSession(address)
      if (record === null) throw new Error(`no session with ${addressKey(address)}`)
      return record
    }))
  }
}

/** Trust on first use: a changed identity key is refused until the test says otherwise. */
class MemoryIdentityStore extends signal.IdentityKeyStore {
  private readonly known = new Map<string, signal.PublicKey>()

  constructor (private readonly identity: signal.IdentityKeyPair, private readonly registrationId: number) { super() }

  async getIdentityKey (): Promise<signal.PrivateKey> { return this.identity.privateKey }
  async getLocalRegistrationId (): Promise<number> { return this.registrationId }

  async saveIdentity (name: signal.ProtocolAddress, key: signal.PublicKey): Promise<signal.IdentityChange> {
    const old = this.known.get(addressKey(name))
    this.known.set(addressKey(name), key)
    return old !== undefined && !old.equals(key) ? signal.IdentityChange.ReplacedExisting : signal.IdentityChange.NewOrUnchanged
  }

  async isTrustedIdentity (name: signal.ProtocolAddress, key: signal.PublicKey, _direction: signal.Direction): Promise<boolean> {
    const old = this.known.get(addressKey(name))
    return old === undefined || old.equals(key)
  }

  /** Forgets a peer's identity key, as a user does who accepts a changed safety number. */
  forget (name: signal.ProtocolAddress): void { this.known.delete(addressKey(name)) }

  async getIdentity (name: signal.ProtocolAddress): Promise<signal.PublicKey | null> {
    return this.known.get(addressKey(name)) ?? null
  }
}

class MemoryPreKeyStore extends signal.PreKeyStore {
  readonly records = new Map<number, signal.PreKeyRecord>()
  async savePreKey (id: number, record: signal.PreKeyRecord): Promise<void> { this.records.set(id, record) }
  async getPreKey (id: number): Promise<signal.PreKeyRecord> {
    const record = this.records.get(id)
    if (record === undefined) throw new Error(`no prekey ${id}`)
    return record
  }

  async removePreKey (id: number): Promise<void> { this.records.delete(id) }
}

class MemorySignedPreKeyStore extends signal.SignedPreKeyStore {
  readonly records = new Map<number, signal.SignedPreKeyRecord>()
  async saveSignedPreKey (id: number, record: signal.SignedPreKeyRecord): Promise<void> { this.records.set(id, record) }
  async getSignedPreKey (id: number): Promise<signal.SignedPreKeyRecord> {
    const record = this.records.get(id)
    if (record === undefined) throw new Error(`no signed prekey ${id}`)
    return record
  }
}

/**
 * One-time Kyber keys are deleted once used; the last-resort key stays, but, as Signal's
 * clients do, a (signed prekey, base key) pair seen before on it is a replay and refused.
 */
class MemoryKyberPreKeyStore extends signal.KyberPreKeyStore {
  readonly records = new Map<number, signal.KyberPreKeyRecord>()
  readonly lastResort = new Set<number>()
  private readonly seen = new Set<string>()

  async saveKyberPreKey (id: number, record: signal.KyberPreKeyRecord): Promise<void> { this.records.set(id, record) }
  async getKyberPreKey (id: number): Promise<signal.KyberPreKeyRecord> {
    const record = this.records.get(id)
    if (record === undefined) throw new Error(`no Kyber prekey ${id}`)
    return record
  }

  async markKyberPreKeyUsed (id: number, signedPreKeyId: number, baseKey: signal.PublicKey): Promise<void> {
    if (!this.lastResort.has(id)) {
      this.records.delete(id)
      return
    }
    const use = `${id}:${signedPreKeyId}:${b64(baseKey.serialize())}`
    if (this.seen.has(use)) throw new Error(`Kyber last-resort key ${id} replayed`)
    this.seen.add(use)
  }
}

export interface Peer { username: string, deviceId: number }

export class SignalClient {
  readonly address: signal.ProtocolAddress
  readonly sessions = new MemorySessionStore()
  readonly identities: MemoryIdentityStore
  readonly preKeys = new MemoryPreKeyStore()
  readonly signedPreKeys = new MemorySignedPreKeyStore()
  readonly kyberPreKeys = new MemoryKyberPreKeyStore()
  /** Every private key this device ever made, serialized: what must never reach the server. */
  readonly privateKeys: Bytes[] = []
  // key ids only grow, so that a new batch never reuses an id the server handed out
  private nextId = 1

  constructor (
    readonly username: string,
    readonly deviceId: number,
    readonly identity: signal.IdentityKeyPair = signal.IdentityKeyPair.generate(),
    readonly registrationId: number = newRegistrationId()
  ) {
    this.address = signal.ProtocolAddress.new(username, deviceId)
    this.identities = new MemoryIdentityStore(identity, registrationId)
    this.privateKeys.push(identity.privateKey.serialize())
  }

  /** The body of `PUT /v1/keys/identity`. */
  identityBody (password?: string): { identityKey: string, password?: string } {
    return { identityKey: b64(this.identity.publicKey.serialize()), ...(password === undefined ? {} : { password }) }
  }

  private kyberKey (lastResort: boolean): SignedPreKeyWire {
    const keyId = this.nextId++
    const pair = signal.KEMKeyPair.generate()
    const publicKey = pair.getPublicKey().serialize()
    const signature = this.identity.privateKey.sign(publicKey)
    const record = signal.KyberPreKeyRecord.new(keyId, Date.now(), pair, signature)
    this.kyberPreKeys.records.set(keyId, record)
    if (lastResort) this.kyberPreKeys.lastResort.add(keyId)
    this.privateKeys.push(pair.getSecretKey().serialize())
    return { keyId, publicKey: b64(publicKey), signature: b64(signature) }
  }

  /**
   * Makes keys and keeps their private halves in this device's stores; returns the body of
   * `PUT /v1/keys` that publishes them. Each kind is left out when its count is 0 / false.
   */
  generateKeys ({ preKeys = 20, pqPreKeys = 20, signed = true, lastResort = true } = {}): KeysBody {
    const body: KeysBody = {}
    if (preKeys > 0) {
      body.preKeys = []
      for (let i = 0; i < preKeys; i++) {
        const keyId = this.nextId++
        const privateKey = signal.PrivateKey.generate()
        this.preKeys.records.set(keyId, signal.PreKeyRecord.new(keyId, privateKey.getPublicKey(), privateKey))
        this.privateKeys.push(privateKey.serialize())
        body.preKeys.push({ keyId, publicKey: b64(privateKey.getPublicKey().serialize()) })
      }
    }
    if (signed) {
      const keyId = this.nextId++
      const privateKey = signal.PrivateKey.generate()
      const publicKey = privateKey.getPublicKey().serialize()
      const signature = this.identity.privateKey.sign(publicKey)
      this.signedPreKeys.records.set(keyId, signal.SignedPreKeyRecord.new(keyId, Date.now(), privateKey.getPublicKey(), privateKey, signature))
      this.privateKeys.push(privateKey.serialize())
      body.signedPreKey = { keyId, publicKey: b64(publicKey), signature: b64(signature) }
    }
    if (pqPreKeys > 0) {
      body.pqPreKeys = []
      for (let i = 0; i < pqPreKeys; i++) body.pqPreKeys.push(this.kyberKey(false))
    }
    if (lastResort) body.pqLastResortPreKey = this.kyberKey(true)
    return body
  }

  /** Starts a session with each device of a bundle answer; returns the devices it covered. */
  async processBundles (username: string, reply: BundleReply): Promise<Peer[]> {
    const peers: Peer[] = []
    for (const bundle of toPreKeyBundles(reply)) {
      const peer = signal.ProtocolAddress.new(username, bundle.deviceId())
      await signal.processPreKeyBundle(bundle, peer, this.address, this.sessions, this.identities)
      peers.push({ username, deviceId: bundle.deviceId() })
    }
    return peers
  }

  /** The registrationId the session with a peer device was started with, as a sender compares it with a fresh bundle's. */
  async sessionRegistrationId (peer: Peer): Promise<number | undefined> {
    return (await this.sessions.getSession(signal.ProtocolAddress.new(peer.username, peer.deviceId)))?.remoteRegistrationId()
  }

  /** The devices of `username` this device has a session with: whom a Signal client encrypts for. */
  sessionDevices (username: string): number[] { return this.sessions.devicesOf(username) }

  /** Drops the session with a peer device (what a Signal client does for a device the server calls stale). */
  forgetSession (peer: Peer): void { this.sessions.delete(signal.ProtocolAddress.new(peer.username, peer.deviceId)) }

  /** Accepts a peer's new identity key (a changed safety number) for the next bundle. */
  trustNewIdentity (peer: Peer): void { this.identities.forget(signal.ProtocolAddress.new(peer.username, peer.deviceId)) }

  async encrypt (to: Peer, plaintext: string): Promise<Envelope> {
    const message = await signal.signalEncrypt(new Uint8Array(Buffer.from(plaintext, 'utf8')), signal.ProtocolAddress.new(to.username, to.deviceId),
      this.address, this.sessions, this.identities)
    const body = b64(message.serialize())
    switch (message.type()) {
      case signal.CiphertextMessageType.PreKey: return { type: 3, body }
      case signal.CiphertextMessageType.Whisper: return { type: 1, body }
      default: throw new Error(`unexpected libsignal message type ${message.type()}`)
    }
  }

  async decrypt (from: Peer, envelope: Envelope): Promise<string> {
    const sender = signal.ProtocolAddress.new(from.username, from.deviceId)
    const bytes = unb64(envelope.body)
    const plaintext = envelope.type === 3
      ? await signal.signalDecryptPreKey(signal.PreKeySignalMessage.deserialize(bytes), sender, this.address, this.sessions, this.identities,
        this.preKeys, this.signedPreKeys, this.kyberPreKeys)
      : await signal.signalDecrypt(signal.SignalMessage.deserialize(bytes), sender, this.address, this.sessions, this.identities)
    return Buffer.from(plaintext).toString('utf8')
  }
}

/** A bundle answer as libsignal's PreKeyBundles, one per device (the Kyber arguments are mandatory). */
export function toPreKeyBundles (reply: BundleReply): signal.PreKeyBundle[] {
  const identityKey = signal.PublicKey.deserialize(unb64(reply.identityKey))
  return reply.devices.map(device => signal.PreKeyBundle.new(
    device.registrationId,
    device.deviceId,
    device.preKey?.keyId ?? null,
    device.preKey === undefined ? null : signal.PublicKey.deserialize(unb64(device.preKey.publicKey)),
    device.signedPreKey.keyId,
    signal.PublicKey.deserialize(unb64(device.signedPreKey.publicKey)),
    unb64(device.signedPreKey.signature),
    identityKey,
    device.pqPreKey.keyId,
    signal.KEMPublicKey.deserialize(unb64(device.pqPreKey.publicKey)),
    unb64(device.pqPreKey.signature)
  ))
}

/** The base64 text with one bit of its decoded bytes flipped: a signature that no longer verifies. */
export function flipBit (text: string, bit = 0): string {
  const bytes = unb64(text)
  bytes[bit >> 3]! ^= 1 << (bit & 7)
  return b64(bytes)
}

/**
 * A message on the wire of the original API: one `send_message` per device, the
 * recipient_blob tagged with the devices it goes from and to, so that each device of the
 * recipient picks its own out of the shared conversation.
 */
export interface DeviceMessage extends Envelope { from: number, to: number }
