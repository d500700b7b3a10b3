import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import fastifyJwt from '@fastify/jwt'
import fp from 'fastify-plugin'
import type { User } from '../../db/users.js'

// HS256 only: `alg: none` and every other algorithm are refused at verification.

export default fp(async function jwtPlugin (fastify) {
  const { config } = fastify
  await fastify.register(fastifyJwt, {
    secret: config.jwtSecret ?? developmentSecret(config.dataDir, config.env === 'test'),
    sign: { algorithm: 'HS256', expiresIn: `${config.tokenTtlSeconds}s` },
    verify: { algorithms: ['HS256'] }
  })
}, { name: 'jwt', dependencies: ['config'] })

/**
 * Without JWT_SECRET (refused in production), a development server keeps a random secret
 * in its data folder so that restarts keep sessions; tests get a fresh one in memory.
 */
export function developmentSecret (dataDir: string, ephemeral: boolean): string {
  if (ephemeral) return randomBytes(48).toString('base64')
  const file = join(dataDir, 'jwt-secret')
  try {
    return readFileSync(file, 'utf8').trim()
  } catch {
    const secret = randomBytes(48).toString('base64')
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' })
    return secret
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: {
      user_id: number
      username: string
      /** token id, for revocation by logout */
      jti: string
      /** the user's token_version when issued: a password change moves it on */
      ver: number
      /** the device the token was issued to (1 to 127); absent in tokens from before devices (device 1) */
      device_id?: number
      /** that device's key (devices.id): a device removed or registered again has a new one */
      dk?: number
      /** set by the signer */
      iat?: number
      exp?: number
    }
    user: User
  }
}
