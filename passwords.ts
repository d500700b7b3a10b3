import { pbkdf2, scrypt, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { hash, verify } from '@node-rs/argon2'

// Password hashing without Fastify (plugins/app/passwords.ts decorates the server with it,
// adding a dummy hash for unknown users and a bound on hashes in flight). New hashes are
// Argon2id with the library's defaults (OWASP: m=19 MiB, t=2, p=1), computed on the libuv
// thread pool so the event loop keeps serving while a hash runs.

/** An Argon2id hash of the password. */
export async function hashPassword (password: string): Promise<string> {
  return await hash(password)
}

/** Verifies a password against a stored Argon2 or Werkzeug hash; false for a malformed one. */
export async function verifyPassword (storedHash: string, password: string): Promise<boolean> {
  if (isWerkzeugHash(storedHash)) return await verifyWerkzeugHash(storedHash, password)
  return await verify(storedHash, password).catch(() => false)
}

/** True when a verified hash is not Argon2id and should be replaced. */
export function needsRehash (storedHash: string): boolean {
  return !storedHash.startsWith('$argon2id$')
}

/** Runs jobs at most `slots` at a time, the others in the order they came. */
export function turns (slots: number): <T>(job: () => Promise<T>) => Promise<T> {
  let running = 0
  const waiting: Array<() => void> = []
  return async job => {
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
}

// Password hashes of the original server (Werkzeug's generate_password_hash), so that an
// imported user logs in with its old password: `pbkdf2:<digest>:<iterations>$<salt>$<hex>`
// and `scrypt:<n>:<r>:<p>$<salt>$<hex>`. Werkzeug uses the salt string's bytes as the salt
// and stores the derived key in hex (the digest's length for pbkdf2, 64 bytes for scrypt).
// Parameters are bounded so that a crafted row cannot make one login take minutes or gigabytes.

const pbkdf2Async = promisify(pbkdf2)
const scryptAsync = promisify(scrypt) as (password: Buffer, salt: Buffer, keylen: number, options: { N: number, r: number, p: number, maxmem: number }) => Promise<Buffer>

const PBKDF2_DIGESTS: Record<string, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 }
const MAX_PBKDF2_ITERATIONS = 5_000_000
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
const FORMAT = /^(pbkdf2|scrypt):([a-z0-9:]+)\$([^$]+)\$([0-9a-f]+)$/

type Derivation =
  | { kind: 'pbkdf2', digest: string, iterations: number, salt: string, expected: Buffer }
  | { kind: 'scrypt', n: number, r: number, p: number, salt: string, expected: Buffer }

function parse (stored: string): Derivation | undefined {
  const match = FORMAT.exec(stored)
  if (match === null) return undefined
  const [, method, params = '', salt = '', hex = ''] = match
  const args = params.split(':')
  const expected = Buffer.from(hex, 'hex')
  if (method === 'pbkdf2') {
    const [digest = '', iterationsText = ''] = args
    const iterations = Number(iterationsText)
    if (args.length !== 2 || PBKDF2_DIGESTS[digest] !== expected.length || !Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) return undefined
    return { kind: 'pbkdf2', digest, iterations, salt, expected }
  }
  const [n = 0, r = 0, p = 0] = args.map(Number)
  const valid = args.length === 3 && [n, r, p].every(v => Number.isInteger(v) && v >= 1) &&
    n > 1 && (n & (n - 1)) === 0 && 128 * n * r * p <= MAX_SCRYPT_MEMORY && expected.length === 64
  return valid ? { kind: 'scrypt', n, r, p, salt, expected } : undefined
}

/** True when the stored hash is in one of the Werkzeug formats this server can verify. */
export function isWerkzeugHash (stored: string): boolean {
  return parse(stored) !== undefined
}

/** Verifies a password against a Werkzeug hash, in constant time; false for any malformed hash. */
export async function verifyWerkzeugHash (stored: string, password: string): Promise<boolean> {
  const derivation = parse(stored)
  if (derivation === undefined) return false
  const secret = Buffer.from(password, 'utf8')
  const salt = Buffer.from(derivation.salt, 'utf8')
  const actual = derivation.kind === 'pbkdf2'
    ? await pbkdf2Async(secret, salt, derivation.iterations, derivation.expected.length, derivation.digest)
    // OpenSSL needs a little more than 128 * n * r * p bytes; Node's default cap (32 MiB) refuses n = 2^15, r = 8
    : await scryptAsync(secret, salt, 64, { N: derivation.n, r: derivation.r, p: derivation.p, maxmem: 128 * derivation.n * derivation.r * derivation.p + 1024 * 1024 })
  return timingSafeEqual(actual, derivation.expected)
}
