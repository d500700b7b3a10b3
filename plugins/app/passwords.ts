import fp from 'fastify-plugin'
import { hashPassword, needsRehash, turns, verifyPassword } from '../../passwords.js'

// The password code of passwords.ts as a decorator. At most PASSWORD_HASH_CONCURRENCY
// hashes run at once (by default one core is left free): a login storm that took every core
// made every other request wait behind it. Hashes imported from the original server
// (Werkzeug pbkdf2/scrypt) verify too, and are replaced by an Argon2id hash on the first
// successful login (see needsRehash).

export interface Passwords {
  hash: (password: string) => Promise<string>
  /** Verifies against a stored hash, or against a dummy one when there is no user, so both take the same time. */
  verify: (storedHash: string | undefined, password: string) => Promise<boolean>
  /** True when a verified hash is not Argon2id and should be replaced. */
  needsRehash: (storedHash: string) => boolean
}

export default fp(async function passwordsPlugin (fastify) {
  const dummyHash = await hashPassword('not a real password; equalises login timing')
  const inTurn = turns(fastify.config.passwordHashConcurrency)
  fastify.decorate('passwords', {
    hash: async (password: string) => await inTurn(async () => await hashPassword(password)),
    async verify (storedHash: string | undefined, password: string) {
      return await inTurn(async () => {
        const ok = await verifyPassword(storedHash ?? dummyHash, password)
        return ok && storedHash !== undefined
      })
    },
    needsRehash
  } satisfies Passwords)
}, { name: 'passwords', dependencies: ['config'] })

declare module 'fastify' {
  interface FastifyInstance {
    passwords: Passwords
  }
}
