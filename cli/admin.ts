import { userInfo } from 'node:os'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../config.js'
import { connect } from '../db/connect.js'
import { BackupError } from '../db/backup.js'
import { migrateToLatest } from '../db/migrate.js'
import { OriginalDatabaseError } from '../db/original.js'
import { publishDisconnects } from '../plugins/app/redis-hub.js'
import { CommandError, UsageError, commands, type Options } from './commands.js'

// `npm run admin -- <command>`: the same configuration as the server (DATA_DIR or
// DATABASE_URL), the same migrations and query modules. Safe beside a running server:
// SQLite in WAL mode with a busy timeout, or PostgreSQL.

export const EXIT = { ok: 0, failed: 1, usage: 2, notABackup: 65, config: 78 } as const

export interface AdminIO {
  out: (text: string) => void
  err: (text: string) => void
  env: Record<string, string | undefined>
}

export function usage (): string {
  const width = Math.max(...Object.values(commands).map(command => command.usage.length))
  return [
    'usage: npm run admin -- <command> [options] [--json]',
    '',
    'commands:',
    ...Object.values(commands).map(command => `  ${command.usage.padEnd(width)}  ${command.summary}`),
    '',
    '--json prints one JSON document instead of text. The database is the server\'s: DATA_DIR or DATABASE_URL.',
    'Exit codes: 0 done, 1 could not be done (e.g. no such user), 2 bad usage, 65 not a backup this version can restore, 78 bad configuration.'
  ].join('\n')
}

function operator (): string {
  try {
    return `cli:${userInfo().username}`
  } catch {
    return 'cli'
  }
}

/** Runs one admin command; resolves to the process exit code. */
export async function runAdmin (argv: string[], io: AdminIO): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    ;(name === undefined ? io.err : io.out)(usage())
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  const command = commands[name]
  if (command === undefined) {
    io.err(`error: unknown command '${name}'\n\n${usage()}`)
    return EXIT.usage
  }

  let options: Options
  let arg: string | undefined
  try {
    const parsed = parseArgs({ args: rest, options: { ...command.options, json: { type: 'boolean' } }, allowPositionals: true, strict: true })
    const expected = command.positionals ?? 0
    if (parsed.positionals.length !== expected) {
      throw new UsageError(expected === 0 ? `${name} takes no argument` : `${name} takes exactly one argument`)
    }
    options = parsed.values as Options
    arg = parsed.positionals[0]
  } catch (error) {
    io.err(`error: ${(error as Error).message}\nusage: npm run admin -- ${command.usage} [--json]`)
    return EXIT.usage
  }

  let config
  try {
    config = loadConfig(io.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    io.err(error.message)
    return EXIT.config
  }

  const failure = (error: unknown): number => {
    if (error instanceof UsageError) {
      io.err(`error: ${error.message}\nusage: npm run admin -- ${command.usage} [--json]`)
      return EXIT.usage
    }
    if (error instanceof BackupError) {
      io.err(`error: ${error.message}`)
      return error.exit
    }
    if (error instanceof CommandError || error instanceof OriginalDatabaseError) {
      io.err(`error: ${error.message}`)
      return EXIT.failed
    }
    io.err(`error: ${name} failed: ${(error as Error).message}`)
    return EXIT.failed
  }

  if (command.runOnFiles !== undefined) {
    try {
      return await command.runOnFiles({ database: config.database, json: options.json === true, out: io.out, err: io.err }, options, arg)
    } catch (error) {
      return failure(error)
    }
  }

  const db = connect(config.database)
  try {
    await migrateToLatest(db)
    const { redisUrl, redisPrefix } = config
    const endSessions = async (userId: number): Promise<void> => {
      // without Redis a server notices at its next session check (each socket's ping)
      if (redisUrl === undefined) return
      try {
        await publishDisconnects(redisUrl, redisPrefix, [userId])
      } catch (error) {
        io.err(`warning: could not reach Redis (${(error as Error).message}); running servers close the user's sockets at their next session check`)
      }
    }
    const limits = { maxKeyLength: config.maxKeyLength, maxBlobLength: config.maxBlobLength }
    return await command.run!({ db, json: options.json === true, actor: operator(), out: io.out, endSessions, limits }, options, arg)
  } catch (error) {
    return failure(error)
  } finally {
    await db.destroy()
  }
}
