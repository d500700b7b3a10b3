import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { flushLog } from './logging.js'

// Builds, listens, and shuts down gracefully: on SIGTERM/SIGINT in-flight requests
// finish and the database closes before the process exits.

let config
try {
  config = loadConfig()
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  process.stderr.write(error.message + '\n')
  process.exit(78) // EX_CONFIG
}

let server: Awaited<ReturnType<typeof buildApp>>
try {
  server = await buildApp(config)
} catch (error) {
  // what could not start (the database, the metrics port, ...) in one line, not a stack trace
  const { message, code } = error as { message?: string, code?: string }
  process.stderr.write(`could not start: ${code === undefined ? '' : code + ' '}${message ?? String(error)}\n`)
  process.exit(1)
}

closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err !== undefined) server.log.error({ err }, 'server closing after an error')
  else server.log.info({ signal }, 'server closing')
  await server.close()
})

try {
  await server.listen({ port: config.port, host: config.host })
  flushLog() // the line saying where it listens, at once (log lines are written in chunks)
} catch (err) {
  server.log.error({ err }, 'could not listen')
  process.exit(1)
}
