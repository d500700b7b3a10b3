#!/usr/bin/env node
import { runAdmin } from '../cli/admin.js'

// The admin CLI's entry point (`npm run admin -- <command>`); everything else is in cli/.

process.exitCode = await runAdmin(process.argv.slice(2), {
  out: text => { process.stdout.write(text + '\n') },
  err: text => { process.stderr.write(text + '\n') },
  env: process.env
})
