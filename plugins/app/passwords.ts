import fp from 'fastify-plugin'
import { werkzeugMethodsInUse } from '../../db/import-original.js'
import { deriveInVain, hashPassword, isWerkzeugHash, needsRehash, turns, verifyPassword, werkzeugMethod } from '../../passwords.js'

// The password code of passwords.ts as a decorator. At most PASSWORD_HASH_CONCURRENCY
// hashes run at once (by default one core is left free): a login storm that took every core
// made every other request wait behind it. Hashes imported from the original server
// (Werkzeug pbkdf2/scrypt, wrapped in Argon2id at import) verify too, and are replaced by a
// native Argon2id hash on the first successful login (see needsRehash).
//
// Equal work whoever asks: a wrapped hash costs its Werkzeug derivation plus Argon2id. While
// the database holds imported hashes not yet upgraded, every verification runs one Werkzeug
// derivation of each method they use (up to the three most common; its own one for real, the
// others in vain), so a native user, an unknown name and an imported user of any of those
// methods cost the same; a raw Werkzeug hash (stored by an earlier import) also runs Argon2id.
// Otherwise a wrong password would answer ten times slower for an imported user than for a
// name that does not exist. The methods in use are looked up again every REFRESH_MS (an
// import may run beside a running server); once every imported user has logged in, nothing
// is left to pad.

const REFRESH_MS = 30_000

export interface Passwords {
  hash: (password: string) => Promise<string>
  /** Verifies against a stored hash, or against a dummy one when there is no user, so both take the same time. */
  verify: (storedHash: string | undefined, password: string) => Promise<boolean>
  /** True when a verified hash is not native Argon2id and should be replaced. */
  needsRehash: (storedHash: string) => boolean
  /** Hashes running now and waiting for a slot (metrics). */
  load: () => { running: number, waiting: number }
}

export default fp(async function passwordsPlugin (fastify) {
  const dummyHash = await hashPassword('not a real password; equalises login timing')
  const inTurn = turns(fastify.config.passwordHashConcurrency)
  const padding = refreshed(async () => await werkzeugMethodsInUse(fastify.db), REFRESH_MS)
  fastify.decorate('passwords', {
    hash: async (password: string) => await inTurn(async () => await hashPassword(password)),
    async verify (storedHash: string | undefined, password: string) {
      const methods = await padding()
      return await inTurn(async () => {
        const target = storedHash ?? dummyHash
        // the work the stored hash lacks, before it, as a wrapped hash derives before Argon2id
        const own = werkzeugMethod(target)
        for (const method of methods) if (method !== own) await deriveInVain(method, password)
        const ok = await verifyPassword(target, password)
        if (isWerkzeugHash(target)) await verifyPassword(dummyHash, password)
        return ok && storedHash !== undefined
      })
    },
    needsRehash,
    load: inTurn.load
  } satisfies Passwords)
}, { name: 'passwords', dependencies: ['config', 'db'] })

/** The value of `load`, loaded again when older than `ms`; one load at a time. */
function refreshed<T> (load: () => Promise<T>, ms: number): () => Promise<T> {
  let current: { at: number, value: Promise<T> } | undefined
  return async () => {
    if (current === undefined || Date.now() - current.at > ms) {
      const value = load()
      current = { at: Date.now(), value }
      value.catch(() => { current = undefined })
    }
    return await current.value
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    passwords: Passwords
  }
}
