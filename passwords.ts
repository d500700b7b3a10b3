import { pbkdf2, scrypt, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { hash, parseOptions, verify } from '@node-rs/argon2'

// Password hashing without Fastify (plugins/app/passwords.ts decorates the server with it,
// adding a dummy hash for unknown users, login timing equalised with imported users and a
// bound on hashes in flight). New hashes are Argon2id with the library's defaults (OWASP:
// m=19 MiB, t=2, p=1), computed on the libuv thread pool so the event loop keeps serving
// while a hash runs. Every stored hash this server accepts is one of:
//   - native:   `$argon2id$v=19$m=19456,t=2,p=1$...`, or another Argon2 hash within ARGON2_BOUNDS
//               (brought by an import; replaced by a native one at the first successful login);
//   - wrapped:  `$cc-wrapped$<werkzeug method>$<werkzeug salt>$argon2id$...` (see wrapWerkzeugHash);
//   - Werkzeug: `pbkdf2:...$<salt>$<hex>` or `scrypt:...$<salt>$<hex>`, as an earlier import stored them.
// Anything else, or parameters beyond the bounds, never verifies: a crafted row cannot make
// one login take seconds or gigabytes.

/** The Argon2id parameters of every new hash (the library's defaults, stated so needsRehash can compare). */
const NATIVE = { memoryCost: 19456, timeCost: 2, parallelism: 1 }
const NATIVE_PREFIX = `$argon2id$v=19$m=${NATIVE.memoryCost},t=${NATIVE.timeCost},p=${NATIVE.parallelism}$`

/** Bounds on Argon2 hashes this server verifies (an imported one may have other parameters). */
export const ARGON2_BOUNDS = { memoryKiB: 64 * 1024, timeCost: 4, parallelism: 4, outputBytes: 64 }

/** An Argon2id hash of the password. */
export async function hashPassword (password: string): Promise<string> {
  return await hash(password, NATIVE)
}

/** Verifies a password against a stored hash in any accepted form; false for a malformed or unbounded one. */
export async function verifyPassword (storedHash: string, password: string): Promise<boolean> {
  const wrapped = parseWrapped(storedHash)
  if (wrapped !== undefined) return await verifyArgon2(wrapped.argon2, (await derive(wrapped.derivation, password)).toString('hex'))
  if (isWerkzeugHash(storedHash)) return await verifyWerkzeugHash(storedHash, password)
  return await verifyArgon2(storedHash, password)
}

/** True when a verified hash is not a native Argon2id hash and should be replaced. */
export function needsRehash (storedHash: string): boolean {
  return !storedHash.startsWith(NATIVE_PREFIX)
}

/** Why the server refuses to verify an Argon2 hash: beyond the bounds or malformed; undefined when it accepts it. */
function argon2Refusal (stored: string): string | undefined {
  let options
  try {
    options = parseOptions(stored)
  } catch {
    return 'plaintext or an unknown hash format'
  }
  const { memoryKiB, timeCost, parallelism, outputBytes } = ARGON2_BOUNDS
  if (options.memoryCost > memoryKiB || options.timeCost > timeCost || options.parallelism > parallelism || options.outputLen > outputBytes) {
    return `Argon2 parameters beyond the bounds (m <= ${memoryKiB} KiB, t <= ${timeCost}, p <= ${parallelism}, output <= ${outputBytes} bytes)`
  }
  return undefined
}

async function verifyArgon2 (stored: string, password: string): Promise<boolean> {
  if (!stored.startsWith('$argon2') || argon2Refusal(stored) !== undefined) return false
  return await verify(stored, password).catch(() => false)
}

/** Runs jobs at most `slots` at a time, the others in the order they came; `load` tells how many run and wait now. */
export interface Turns {
  <T>(job: () => Promise<T>): Promise<T>
  load: () => { running: number, waiting: number }
}

export function turns (slots: number): Turns {
  let running = 0
  const waiting: Array<() => void> = []
  const inTurn = async <T>(job: () => Promise<T>): Promise<T> => {
    if (running < slots) running++
    else await new Promise<void>(resolve => waiting.push(resolve))
    try {
      return await job()
    } finally {
      // the slot passes straight to the next job in line, or is freed
      const next = waiting.shift()
      if (next !== undefined) next()
      else running--
    }
  }
  return Object.assign(inTurn, { load: () => ({ running, waiting: waiting.length }) })
}

// Password hashes of the original server (Werkzeug's generate_password_hash), so that an
// imported user logs in with its old password: `pbkdf2:<digest>:<iterations>$<salt>$<hex>`
// and `scrypt:<n>:<r>:<p>$<salt>$<hex>`. Werkzeug uses the salt string's bytes as the salt
// and stores the derived key in hex (the digest's length for pbkdf2, 64 bytes for scrypt).
// The bounds let through every default Werkzeug ever had (pbkdf2:sha256:600000 in 2.3,
// scrypt:32768:8:1 in 3.x, 32 MiB) with room to spare, and nothing that makes one login
// take seconds or hundreds of MiB.

const pbkdf2Async = promisify(pbkdf2)
const scryptAsync = promisify(scrypt) as (password: Buffer, salt: Buffer, keylen: number, options: { N: number, r: number, p: number, maxmem: number }) => Promise<Buffer>

const PBKDF2_DIGESTS: Record<string, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 }
export const WERKZEUG_BOUNDS = { pbkdf2Iterations: 1_000_000, scryptMemoryBytes: 64 * 1024 * 1024 }
const FORMAT = /^((?:pbkdf2|scrypt):[a-z0-9:]+)\$([^$]+)\$([0-9a-f]+)$/
// the digest Werkzeug stored, hashed by Argon2id: `$cc-wrapped$<method>$<salt>` + the Argon2id PHC string
const WRAPPED_TAG = '$cc-wrapped$'
const WRAPPED = /^\$cc-wrapped\$((?:pbkdf2|scrypt):[a-z0-9:]+)\$([^$]+)(\$argon2id\$.+)$/

interface Derivation { method: string, salt: string, keylen: number, run: (secret: Buffer, salt: Buffer) => Promise<Buffer> }

/** The derivation a Werkzeug method names (`pbkdf2:sha256:600000`, `scrypt:32768:8:1`), or why it is refused. */
function parseMethod (method: string, salt: string): Derivation | string {
  const [name, ...args] = method.split(':')
  if (name === 'pbkdf2') {
    const [digest = '', iterationsText = ''] = args
    const iterations = Number(iterationsText)
    const keylen = PBKDF2_DIGESTS[digest]
    if (args.length !== 2 || keylen === undefined || !/^[1-9][0-9]*$/.test(iterationsText)) return 'plaintext or an unknown hash format'
    if (iterations > WERKZEUG_BOUNDS.pbkdf2Iterations) return `pbkdf2 iterations beyond the bound (${WERKZEUG_BOUNDS.pbkdf2Iterations})`
    return { method, salt, keylen, run: async (secret, saltBytes) => await pbkdf2Async(secret, saltBytes, iterations, keylen, digest) }
  }
  const [n = 0, r = 0, p = 0] = args.map(Number)
  if (args.length !== 3 || ![n, r, p].every(v => Number.isInteger(v) && v >= 1) || n < 2 || (n & (n - 1)) !== 0) return 'plaintext or an unknown hash format'
  const memory = 128 * n * r * p
  if (memory > WERKZEUG_BOUNDS.scryptMemoryBytes) return `scrypt parameters beyond the bound (128 * N * r * p <= ${WERKZEUG_BOUNDS.scryptMemoryBytes / 1024 / 1024} MiB)`
  // OpenSSL needs a little more than 128 * n * r * p bytes; Node's default cap (32 MiB) refuses n = 2^15, r = 8
  return { method, salt, keylen: 64, run: async (secret, saltBytes) => await scryptAsync(secret, saltBytes, 64, { N: n, r, p, maxmem: memory + 1024 * 1024 }) }
}

/** A raw Werkzeug hash's derivation and the key it expects, or why it is refused. */
function parse (stored: string): { derivation: Derivation, expected: Buffer } | string {
  const match = FORMAT.exec(stored)
  if (match === null) return 'plaintext or an unknown hash format'
  const [, method = '', salt = '', hex = ''] = match
  const derivation = parseMethod(method, salt)
  if (typeof derivation === 'string') return derivation
  if (hex.length !== 2 * derivation.keylen) return 'plaintext or an unknown hash format'
  return { derivation, expected: Buffer.from(hex, 'hex') }
}

function parseWrapped (stored: string): { derivation: Derivation, argon2: string } | undefined {
  const match = WRAPPED.exec(stored)
  if (match === null) return undefined
  const [, method = '', salt = '', argon2 = ''] = match
  const derivation = parseMethod(method, salt)
  return typeof derivation === 'string' ? undefined : { derivation, argon2 }
}

async function derive (derivation: Derivation, password: string): Promise<Buffer> {
  return await derivation.run(Buffer.from(password, 'utf8'), Buffer.from(derivation.salt, 'utf8'))
}

/** True when the stored hash is a raw Werkzeug hash this server can verify. */
export function isWerkzeugHash (stored: string): boolean {
  return typeof parse(stored) !== 'string'
}

/** Verifies a password against a raw Werkzeug hash, in constant time; false for any malformed hash. */
export async function verifyWerkzeugHash (stored: string, password: string): Promise<boolean> {
  const parsed = parse(stored)
  if (typeof parsed === 'string') return false
  return timingSafeEqual(await derive(parsed.derivation, password), parsed.expected)
}

/**
 * A raw Werkzeug hash wrapped in Argon2id: `$cc-wrapped$<method>$<salt>$argon2id$...`, where the
 * Argon2id hash (native parameters) is of the hex digest Werkzeug stored. It keeps what a login
 * needs to recompute that digest (method, parameters, salt) and nothing that can be checked
 * against a guess without paying Argon2id too.
 */
export async function wrapWerkzeugHash (stored: string): Promise<string> {
  const parsed = parse(stored)
  if (typeof parsed === 'string') throw new Error('not a Werkzeug hash this server accepts')
  return `${WRAPPED_TAG}${parsed.derivation.method}$${parsed.derivation.salt}${await hashPassword(parsed.expected.toString('hex'))}`
}

/** Whether a hash is wrapped (what the import stores for a Werkzeug hash). */
export function isWrappedHash (stored: string): boolean {
  return parseWrapped(stored) !== undefined
}

/** The Werkzeug method (`pbkdf2:sha256:600000`) of a raw or wrapped hash; undefined for an Argon2 one. */
export function werkzeugMethod (stored: string): string | undefined {
  const wrapped = parseWrapped(stored)
  if (wrapped !== undefined) return wrapped.derivation.method
  const parsed = parse(stored)
  return typeof parsed === 'string' ? undefined : parsed.derivation.method
}

/** Runs a Werkzeug derivation of the given method on the password and throws the result away: the work a wrapped hash costs. */
export async function deriveInVain (method: string, password: string): Promise<void> {
  const derivation = parseMethod(method, 'equal work')
  if (typeof derivation !== 'string') await derive(derivation, password)
}

/**
 * Why an imported password hash is refused (the user is then skipped), or undefined when this
 * server accepts it: a Werkzeug hash within WERKZEUG_BOUNDS (wrapped at import), or an Argon2
 * hash within ARGON2_BOUNDS (kept). The reason names the format, never the hash.
 */
export function importRefusal (stored: unknown): string | undefined {
  if (typeof stored !== 'string') return 'plaintext or an unknown hash format'
  if (stored.startsWith('$argon2')) return argon2Refusal(stored)
  const parsed = parse(stored)
  return typeof parsed === 'string' ? parsed : undefined
}
