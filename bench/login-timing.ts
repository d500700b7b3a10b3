import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { importOriginal } from '../db/import-original.js'
import { werkzeugPbkdf2, werkzeugScrypt, writeOriginal } from '../test/fixtures/original.js'

// How long a wrong-password login takes for a native user, an unknown name and users
// imported from the original server with Werkzeug 2.3's and 3.x's default hashes (the
// timing side channel of issue 12 item 6). Prints milliseconds; asserts nothing.
// Run: node --import @tapjs/typescript/import bench/login-timing.ts [rounds]

const rounds = Number(process.argv[2] ?? 15)
const dir = mkdtempSync(join(tmpdir(), 'login-timing-'))
const file = join(dir, 'chat_server.db')
writeOriginal(file, {
  users: [
    [1, 'imported_pbkdf2', werkzeugPbkdf2('old password', 'Xk3pQ9zLmN2rT5vW', 600_000)],
    [2, 'imported_scrypt', werkzeugScrypt('old password', 'Xk3pQ9zLmN2rT5vW', 32_768, 8, 1)]
  ]
})
const app = await buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', RATE_LIMIT: 'off', DATABASE_URL: 'sqlite::memory:' }))
await app.inject({ method: 'POST', url: '/register', payload: { username: 'native', password: 'a native password' } })
await importOriginal(app.db, file, { actor: 'bench', limits: app.config })

const names = ['native', 'nobody_here', 'imported_pbkdf2', 'imported_scrypt']
const times = new Map<string, number[]>(names.map(name => [name, []]))
for (let round = 0; round < rounds + 1; round++) {
  for (const username of names) {
    const start = process.hrtime.bigint()
    const res = await app.inject({ method: 'POST', url: '/login', payload: { username, password: 'wrong password' } })
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    if (res.statusCode !== 401) throw new Error(`${username}: ${res.statusCode} ${res.body}`)
    if (round > 0) times.get(username)!.push(ms) // the first round warms up
  }
}
for (const [name, list] of times) {
  list.sort((a, b) => a - b)
  const median = list[Math.floor(list.length / 2)]!
  console.log(`${name.padEnd(16)} median ${median.toFixed(1)} ms  min ${list[0]!.toFixed(1)}  max ${list.at(-1)!.toFixed(1)}`)
}
await app.close()
rmSync(dir, { recursive: true })
