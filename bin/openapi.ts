#!/usr/bin/env node
import { writeFileSync } from 'node:fs'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'

// `npm run openapi`: writes the OpenAPI document generated from the route schemas.

const out = process.argv[2] ?? 'openapi.json'
const app = await buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: 'sqlite::memory:' }))
writeFileSync(out, JSON.stringify(app.swagger(), null, 2) + '\n')
await app.close()
process.stdout.write(`wrote ${out}\n`)
