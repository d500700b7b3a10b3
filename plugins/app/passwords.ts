import { hash, verify } from '@node-rs/argon2'
import fp from 'fastify-plugin'
import { isWerkzeugHash, verifyWerkzeugHash } from './werkzeug-hashes.js'

// Argon2id with the library's defaults (OWASP: m=19 MiB, t=2, p=1), computed on the
// libuv thread pool so the event loop keeps serving while a hash runs. At most
// PASSWORD_HASH_CONCURRENCY hashes run at once (by default one core is left free): a login
// storm that took every core made every other request wait behind it. Hashes imported
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
  const inTurn = turns(fastify.config.passwordHashConcurrency)
  fastify.decorate('passwords', {
    hash: async (password: string) => await inTurn(async () => await hash(password)),
    async verify (storedHash: string | undefined, password: string) {
      return await inTurn(async () => {
        if (storedHash !== undefined && isWerkzeugHash(storedHash)) return await verifyWerkzeugHash(storedHash, password)
        const ok = await verify(storedHash ?? dummyHash, password).catch(() => false)
        return ok && storedHash !== undefined
      })
    },
    needsRehash: (storedHash: string) => !storedHash.startsWith('$argon2id$')
  } satisfies Passwords)
}, { name: 'passwords', dependencies: ['config'] })

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

declare module 'fastify' {
  interface FastifyInstance {
    passwords: Passwords
  }
}
