import { hash, verify } from '@node-rs/argon2'
import fp from 'fastify-plugin'
import { isWerkzeugHash, verifyWerkzeugHash } from './werkzeug-hashes.js'

// Argon2id with the library's defaults (OWASP: m=19 MiB, t=2, p=1), computed on the
// libuv thread pool so the event loop keeps serving while a hash runs. Hashes imported
// from the original server (Werkzeug pbkdf2/scrypt) verify too, and are replaced by an
// Argon2id hash on the first successful login (see needsRehash).

export interface Passwords {
  hash: (password: string) => Promise<string>
  /** Verifies against a stored hash, or against a dummy one when there is no user, so both take the same time. */
  verify: (storedHash: string | undefined, password: string) => Promise<boolean>
  /** True when a verified hash is not Argon2id and should be replaced. */
  needsRehash: (storedHash: string) => boolean
}

export default fp(async function passwordsPlugin (fastify) {
  const dummyHash = await hash('not a real password; equalises login timing')
  fastify.decorate('passwords', {
    hash: async (password: string) => await hash(password),
    async verify (storedHash: string | undefined, password: string) {
      if (storedHash !== undefined && isWerkzeugHash(storedHash)) return await verifyWerkzeugHash(storedHash, password)
      const ok = await verify(storedHash ?? dummyHash, password).catch(() => false)
      return ok && storedHash !== undefined
    },
    needsRehash: (storedHash: string) => !storedHash.startsWith('$argon2id$')
  } satisfies Passwords)
}, { name: 'passwords' })

declare module 'fastify' {
  interface FastifyInstance {
    passwords: Passwords
  }
}
