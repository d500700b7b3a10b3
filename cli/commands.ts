import type { Kysely } from 'kysely'
import {
  deleteUser, getStats, getUserDetail, listAudit, listMessages, listRequests, listUsers, setUserDisabled
} from '../db/admin.js'
import { BackupError, backupSqlite, checkBackup, restoreSqlite, type BackupSummary } from '../db/backup.js'
import type { DatabaseSettings } from '../db/connect.js'
import { importOriginal, summary, type ImportLimits } from '../db/import-original.js'
import type { Database } from '../db/schema.js'
import { isoTimes, parseUtcTime } from '../db/time.js'
import { findUserByName } from '../db/users.js'
import { bytes, fields, table } from './format.js'

// One function per CLI command. Each reads its already-parsed options, prints either a
// human-readable text or (with --json) one JSON document, and returns the exit code.

export class UsageError extends Error {}
/** A command that could not do what was asked (no such user, ...): exit code 1. */
export class CommandError extends Error {}

export interface Context {
  db: Kysely<Database>
  json: boolean
  /** who acts, for the audit table */
  actor: string
  /** the server's limits on what a user may store (MAX_KEY_LENGTH, MAX_BLOB_LENGTH), which an import applies too */
  limits: ImportLimits
  out: (text: string) => void
  /** Tells running servers to close the user's sockets and long-polls now (through Redis, when REDIS_URL is set). */
  endSessions: (userId: number) => Promise<void>
}

/** What a command on the database's files (backup, restore) gets instead: it opens no connection first, and migrates nothing. */
export interface FileContext {
  database: DatabaseSettings
  json: boolean
  out: (text: string) => void
  err: (text: string) => void
}

export type Options = Record<string, string | boolean | undefined>

export interface Command {
  usage: string
  summary: string
  options?: Record<string, { type: 'string' | 'boolean' }>
  /** how many positional arguments the command takes */
  positionals?: 0 | 1
  run?: (ctx: Context, options: Options, arg: string | undefined) => Promise<number>
  /** instead of run: a command on the database's files */
  runOnFiles?: (ctx: FileContext, options: Options, arg: string | undefined) => Promise<number>
}

function emit (ctx: { json: boolean, out: (text: string) => void }, data: unknown, human: () => string): number {
  ctx.out(ctx.json ? JSON.stringify(data, null, 2) : human())
  return 0
}

function integer (options: Options, name: string, fallback: number, max: number): number {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !/^[0-9]{1,16}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new UsageError(`--${name} must be a whole number from 1 to ${max}`)
  }
  return Number(value)
}

function pageOptions (options: Options): { page: number, perPage: number } {
  return { page: integer(options, 'page', 1, 1_000_000), perPage: integer(options, 'per-page', 50, 500) }
}

async function userId (ctx: Context, name: string | boolean | undefined): Promise<number | undefined> {
  if (typeof name !== 'string') return undefined
  const user = await findUserByName(ctx.db, name)
  if (user === undefined) throw new CommandError(`no user named '${name}'`)
  return user.id
}

function footer (page: { page: number, per_page: number, total: number }, noun: string): string {
  const pages = Math.max(1, Math.ceil(page.total / page.per_page))
  return `page ${page.page} of ${pages} (${page.total} ${noun})`
}

const pageFlags = { page: { type: 'string' }, 'per-page': { type: 'string' } } as const

export const commands: Record<string, Command> = {
  stats: {
    usage: 'stats [--days N]',
    summary: 'counts of users, keys, contacts, pending requests, messages; database size; messages per day',
    options: { days: { type: 'string' } },
    async run (ctx, options) {
      const stats = await getStats(ctx.db, integer(options, 'days', 14, 366))
      return emit(ctx, stats, () => [
        fields([
          ['users', `${stats.users} (${stats.disabled_users} disabled)`],
          ['public keys', stats.public_keys],
          ['contacts', stats.contacts],
          ['pending requests', stats.pending_requests],
          ['messages', stats.messages],
          ['database size', bytes(stats.database_bytes)]
        ]),
        '',
        'messages per day (UTC)',
        table(stats.messages_per_day, [['day', 'day'], ['messages', 'messages']])
      ].join('\n'))
    }
  },

  users: {
    usage: 'users [--search TEXT] [--page N] [--per-page N]',
    summary: 'list users by name, optionally those whose name contains TEXT',
    options: { search: { type: 'string' }, ...pageFlags },
    async run (ctx, options) {
      const page = await listUsers(ctx.db, options.search as string | undefined, pageOptions(options))
      const items = page.items.map(isoTimes)
      return emit(ctx, { ...page, items }, () => table(items, [
        ['id', 'id'], ['username', 'username'], ['created_at', 'created'], ['disabled_at', 'disabled'], ['has_key', 'key'], ['messages', 'messages']
      ]) + '\n' + footer(page, 'users'))
    }
  },

  user: {
    usage: 'user NAME',
    summary: 'one user: key fingerprint, contacts, pending requests, message counts (never a key, blob or hash)',
    positionals: 1,
    async run (ctx, _options, name) {
      const detail = await getUserDetail(ctx.db, name!)
      if (detail === undefined) throw new CommandError(`no user named '${name!}'`)
      const user = isoTimes(detail)
      return emit(ctx, user, () => fields([
        ['id', user.id],
        ['username', user.username],
        ['created', user.created_at],
        ['disabled', user.disabled_at],
        ['key fingerprint', user.key_fingerprint],
        ['key updated', user.key_updated_at],
        ['contacts', user.contacts.length === 0 ? null : user.contacts.join(', ')],
        ['requests sent', `${user.requests_sent_pending} pending`],
        ['requests received', `${user.requests_received_pending} pending`],
        ['messages sent', user.messages_sent],
        ['messages received', user.messages_received],
        ['last message', user.last_message_at]
      ]))
    }
  },

  'delete-user': {
    usage: 'delete-user NAME --yes',
    summary: 'erase a user as delete_account does: keys, requests, contacts and both copies of every message',
    options: { yes: { type: 'boolean' } },
    positionals: 1,
    async run (ctx, options, name) {
      const detail = await getUserDetail(ctx.db, name!)
      if (detail === undefined) throw new CommandError(`no user named '${name!}'`)
      if (options.yes !== true) {
        throw new UsageError(`this erases '${detail.username}' with their key, requests and ${detail.messages_sent + detail.messages_received} messages ` +
          '(their partners lose those too); run again with --yes to confirm')
      }
      const outcome = await deleteUser(ctx.db, detail, ctx.actor)
      if (outcome === 'not_found') throw new CommandError(`no user named '${name!}'`)
      await ctx.endSessions(detail.id)
      return emit(ctx, { deleted: detail.username }, () => `deleted '${detail.username}'`)
    }
  },

  'disable-user': {
    usage: 'disable-user NAME',
    summary: 'refuse the user\'s logins and stop its tokens from working',
    positionals: 1,
    run: async (ctx, _options, name) => await toggle(ctx, name!, true)
  },

  'enable-user': {
    usage: 'enable-user NAME',
    summary: 'let a disabled user log in again',
    positionals: 1,
    run: async (ctx, _options, name) => await toggle(ctx, name!, false)
  },

  requests: {
    usage: 'requests [--status pending|accepted|all] [--user NAME] [--page N] [--per-page N]',
    summary: 'chat requests (pending by default), newest first',
    options: { status: { type: 'string' }, user: { type: 'string' }, ...pageFlags },
    async run (ctx, options) {
      const status = options.status ?? 'pending'
      if (status !== 'pending' && status !== 'accepted' && status !== 'all') throw new UsageError('--status must be pending, accepted or all')
      const page = await listRequests(ctx.db, { status, userId: await userId(ctx, options.user) }, pageOptions(options))
      const items = page.items.map(isoTimes)
      return emit(ctx, { ...page, items }, () => table(items, [
        ['id', 'id'], ['requester', 'requester'], ['requested', 'requested'], ['status', 'status'], ['created_at', 'created'], ['updated_at', 'updated']
      ]) + '\n' + footer(page, 'requests'))
    }
  },

  messages: {
    usage: 'messages [--user NAME] [--since DATE] [--before-id ID] [--limit N]',
    summary: 'message metadata, newest first: ids, parties, times, blob sizes (never a blob)',
    options: { user: { type: 'string' }, since: { type: 'string' }, 'before-id': { type: 'string' }, limit: { type: 'string' } },
    async run (ctx, options) {
      let since: number | undefined
      if (typeof options.since === 'string') {
        since = parseUtcTime(options.since)
        if (since === undefined) throw new UsageError('--since must be a date (2026-11-27) or an ISO 8601 time (2026-11-27T10:00:00Z)')
      }
      const rows = await listMessages(ctx.db, {
        userId: await userId(ctx, options.user),
        since,
        beforeId: options['before-id'] === undefined ? undefined : integer(options, 'before-id', 1, Number.MAX_SAFE_INTEGER)
      }, integer(options, 'limit', 50, 1000))
      const items = rows.map(isoTimes)
      return emit(ctx, { items }, () => table(items, [
        ['id', 'id'], ['sender', 'sender'], ['recipient', 'recipient'], ['created_at', 'sent'],
        ['sender_blob_length', 'sender blob'], ['recipient_blob_length', 'recipient blob']
      ]))
    }
  },

  audit: {
    usage: 'audit [--page N] [--per-page N]',
    summary: 'what operators did (CLI and web console), newest first',
    options: pageFlags,
    async run (ctx, options) {
      const page = await listAudit(ctx.db, pageOptions(options))
      const items = page.items.map(isoTimes)
      return emit(ctx, { ...page, items }, () => table(items, [
        ['created_at', 'when'], ['actor', 'who'], ['action', 'action'], ['target', 'target'], ['detail', 'detail']
      ]) + '\n' + footer(page, 'entries'))
    }
  },

  import: {
    usage: 'import PATH/TO/chat_server.db [--dry-run]',
    summary: "bring an original CryptaChat server's users, keys, requests and messages over (safe to run again)",
    options: { 'dry-run': { type: 'boolean' } },
    positionals: 1,
    async run (ctx, options, file) {
      const report = await importOriginal(ctx.db, file!, { actor: ctx.actor, limits: ctx.limits, dryRun: options['dry-run'] === true })
      return emit(ctx, report, () => {
        const { users, chat_requests: requests, messages, public_keys: keys } = report
        const lines = [
          report.dry_run ? 'dry run: nothing was written' : 'imported in one transaction',
          fields([
            ['users', `${users.imported} imported, ${users.already_imported} already here, ${users.skipped.length} skipped`],
            ['public keys', `${keys.imported} imported, ${keys.kept_existing} kept as they were, ${keys.skipped_with_user} skipped with their user, ${keys.skipped.length} skipped`],
            ['chat requests', `${requests.pairs_imported} pairs imported (${requests.mirrors_merged} mirror rows merged), ` +
              `${requests.pairs_accepted_now} pairs now accepted, ${requests.already_imported} already here, ` +
              `${requests.skipped_with_user} skipped with their user, ${requests.skipped.length} skipped`],
            ['messages', `${messages.imported} imported, ${messages.already_imported} already here, ${messages.skipped_with_user} skipped with their user, ${messages.skipped.length} skipped` +
              (messages.unreadable_timestamps > 0 ? `, ${messages.unreadable_timestamps} with an unreadable time (stored with the import time)` : '')],
            ...(report.legacy_hashes_wrapped > 0 ? [['password hashes', `${report.legacy_hashes_wrapped} stored raw by an earlier import, wrapped in Argon2id`]] as Array<[string, string]> : [])
          ])
        ]
        if (users.skipped.length > 0) {
          lines.push('', 'users skipped (with their keys, requests and messages); rename or remove them in the original and import again:',
            table(users.skipped, [['original_id', 'original id'], ['username', 'username'], ['reason', 'reason']]))
        }
        for (const [what, skipped] of [['public keys (by original user id)', keys.skipped], ['chat requests', requests.skipped], ['messages', messages.skipped]] as const) {
          if (skipped.length > 0) lines.push('', `${what} skipped:`, table(skipped, [['original_id', 'original id'], ['reason', 'reason']]))
        }
        if (!report.dry_run) lines.push('', summary(file!, report))
        return lines.join('\n')
      })
    }
  },

  backup: {
    usage: 'backup FILE [--force]',
    summary: 'a consistent copy of the SQLite database (the server may keep running), mode 600, checked',
    options: { force: { type: 'boolean' } },
    positionals: 1,
    async runOnFiles (ctx, options, file) {
      const summary = await backupSqlite(sqliteFile(ctx, 'backup'), file!, { force: options.force === true })
      return emit(ctx, summary, () => `backup written to ${summary.file} (mode 600)\n` + fields(held(summary)))
    }
  },

  restore: {
    usage: 'restore FILE [--check] [--force]',
    summary: 'check a backup (--check), or put it in place of the database (no server may be running; --force replaces one)',
    options: { check: { type: 'boolean' }, force: { type: 'boolean' } },
    positionals: 1,
    async runOnFiles (ctx, options, file) {
      if (options.check === true) {
        const summary = await checkBackup(file!)
        return emit(ctx, summary, () => `${file!} is a CryptaChat backup this version can restore\n` + fields(held(summary)))
      }
      const report = await restoreSqlite(file!, sqliteFile(ctx, 'restore'), { force: options.force === true })
      ctx.err(ERASURE_WARNING)
      const absent = report.users_not_in_replaced
      if (absent !== null && absent.length > 0) {
        ctx.err(`warning: ${absent.length} accounts of the backup were not in the database it replaced (erased since the backup was made?), ids ${absent.join(', ')}: ` +
          "'users' shows their names, 'delete-user NAME --yes' erases them again")
      }
      return emit(ctx, report, () => [
        `restored ${file!} into ${report.database}` + (report.replaced ? ' (the database that was there is replaced)' : ''),
        fields([
          ...held(report),
          ['migrated', report.migrated.length === 0 ? 'nothing to apply' : report.migrated.join(', ')]
        ])
      ].join('\n'))
    }
  }
}

function sqliteFile (ctx: FileContext, command: string): string {
  if (ctx.database.kind === 'postgres') {
    throw new BackupError(`${command} works on a SQLite database; on PostgreSQL use pg_dump -Fc and pg_restore (docs/admin.md, "Backups")`)
  }
  if (ctx.database.file === ':memory:') throw new BackupError(`the database is in memory (sqlite::memory:): there is nothing to ${command}`)
  return ctx.database.file
}

function held (summary: BackupSummary): Array<[string, string | number | null]> {
  return [
    ['size', bytes(summary.bytes)],
    ['integrity', summary.integrity],
    ['migration', `${summary.migration ?? '-'} (${summary.migrations} applied` +
      (summary.pending_migrations.length > 0 ? `, ${summary.pending_migrations.length} to apply on restore` : '') +
      (summary.unknown_migrations.length > 0 ? `, ${summary.unknown_migrations.length} unknown to this version` : '') + ')'],
    ['users', summary.users],
    ['messages', summary.messages],
    ['newest message', summary.newest_message_at]
  ]
}

// Said by every restore: an erasure made after the backup is undone by it.
const ERASURE_WARNING = 'warning: accounts and messages erased after this backup was made are back; ' +
  'erase them again before the server starts (delete-user; docs/admin.md, "Backups")'

async function toggle (ctx: Context, name: string, disable: boolean): Promise<number> {
  const user = await findUserByName(ctx.db, name)
  const outcome = user === undefined ? 'not_found' : await setUserDisabled(ctx.db, user, disable, ctx.actor)
  if (outcome === 'not_found') throw new CommandError(`no user named '${name}'`)
  if (disable && outcome === 'done') await ctx.endSessions(user!.id)
  const state = disable ? 'disabled' : 'enabled'
  return emit(ctx, { username: name, [state]: true, changed: outcome === 'done' },
    () => outcome === 'done' ? `${state} '${name}'` : `'${name}' was already ${state}`)
}
