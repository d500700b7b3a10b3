#!/usr/bin/env node
import { loadConfig } from '../config.js'
import { connect } from '../db/connect.js'
import { migrateToLatest } from '../db/migrate.js'

// `npm run db:migrate`: applies pending migrations to the configured database.
// (The server also applies them at start; this is for deploys that migrate first.)

const db = connect(loadConfig().database)
try {
  const results = await migrateToLatest(db)
  for (const result of results) process.stdout.write(`${result.status}: ${result.migrationName}\n`)
  if (results.length === 0) process.stdout.write('Database is up to date.\n')
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
} finally {
  await db.destroy()
}
