import { availableParallelism } from 'node:os'
import { Ajv, type ValidateFunction } from 'ajv'
import type { Kysely, Transaction } from 'kysely'
import { importRefusal, isWerkzeugHash, turns, werkzeugMethod, wrapWerkzeugHash } from '../passwords.js'
import { blobSchema, publicKeySchema } from '../routes/schemas.js'
import { recordAudit } from './admin.js'
import { openOriginal, type OriginalRequest, type OriginalUser } from './original.js'
import type { Database, ImportedKind, RequestStatus } from './schema.js'
import { parseTime } from './time.js'
import { isValidUsername, usernameKey } from './users.js'

// Brings the original server's users, keys, chat requests and messages over, in one
// transaction. import_map remembers which original row became which of ours, so a second
// run adds only what is new. A name that breaks our rules is reported and skipped with
// everything that belongs to it; nothing is ever merged into another account.
//
// The original is read as hostile: a password hash in a format this server does not verify
// (plaintext, unknown, parameters beyond the bounds of passwords.ts) skips its user with a
// reason that never quotes the hash; a Werkzeug hash is stored wrapped in Argon2id, never as
// it was; a key or a blob that upload_key or send_message would refuse (same schema, same
// validator) is skipped and reported.

export interface SkippedUser { original_id: number, username: string, reason: string }
export interface SkippedRow { original_id: number, reason: string }

export interface ImportReport {
  dry_run: boolean
  users: { imported: number, already_imported: number, skipped: SkippedUser[] }
  public_keys: { imported: number, kept_existing: number, skipped_with_user: number, skipped: SkippedRow[] }
  chat_requests: { pairs_imported: number, pairs_accepted_now: number, already_imported: number, mirrors_merged: number, skipped_with_user: number, skipped: SkippedRow[] }
  messages: { imported: number, already_imported: number, skipped_with_user: number, unreadable_timestamps: number, skipped: SkippedRow[] }
  /** raw Werkzeug hashes an earlier version of the import stored, wrapped by this run (or to be, in a dry run) */
  legacy_hashes_wrapped: number
}

/** The API's limits the original's keys and blobs must fit (MAX_KEY_LENGTH, MAX_BLOB_LENGTH). */
export interface ImportLimits { maxKeyLength: number, maxBlobLength: number }

class DryRun extends Error {}

export async function importOriginal (
  db: Kysely<Database>, file: string, options: { actor: string, limits: ImportLimits, dryRun?: boolean, now?: number }
): Promise<ImportReport> {
  const source = openOriginal(file)
  const now = options.now ?? Date.now()
  let report: ImportReport | undefined
  try {
    await db.transaction().execute(async trx => {
      report = await importInto(trx, source, now, options.limits, options.dryRun === true)
      if (report.dry_run) throw new DryRun()
      await recordAudit(trx, { actor: options.actor, action: 'import', target: null, detail: summary(file, report) }, now)
    })
  } catch (error) {
    if (!(error instanceof DryRun)) throw error
  } finally {
    source.close()
  }
  return report!
}

export function summary (file: string, report: ImportReport): string {
  const { users, public_keys: keys, chat_requests: requests, messages } = report
  return `${file}: ${users.imported} users (${users.skipped.length} skipped), ${keys.imported} keys, ` +
    `${requests.pairs_imported} chat pairs (${requests.pairs_accepted_now} now accepted), ${messages.imported} messages`
}

async function loadMap (trx: Transaction<Database>, kind: ImportedKind): Promise<Map<number, number>> {
  const rows = await trx.selectFrom('import_map').select(['original_id', 'new_id']).where('kind', '=', kind).execute()
  return new Map(rows.map(row => [Number(row.original_id), Number(row.new_id)]))
}

async function importInto (
  trx: Transaction<Database>, source: ReturnType<typeof openOriginal>, now: number, limits: ImportLimits, dryRun: boolean
): Promise<ImportReport> {
  const report: ImportReport = {
    dry_run: dryRun,
    users: { imported: 0, already_imported: 0, skipped: [] },
    public_keys: { imported: 0, kept_existing: 0, skipped_with_user: 0, skipped: [] },
    chat_requests: { pairs_imported: 0, pairs_accepted_now: 0, already_imported: 0, mirrors_merged: 0, skipped_with_user: 0, skipped: [] },
    messages: { imported: 0, already_imported: 0, skipped_with_user: 0, unreadable_timestamps: 0, skipped: [] },
    legacy_hashes_wrapped: await wrapLegacyHashes(trx, dryRun)
  }
  const refusal = {
    key: refusalOf(publicKeySchema(limits.maxKeyLength), `MAX_KEY_LENGTH (${limits.maxKeyLength})`),
    blob: refusalOf(blobSchema(limits.maxBlobLength), `MAX_BLOB_LENGTH (${limits.maxBlobLength})`)
  }

  // users: original id -> our id, for those that exist here (imported now or before)
  const userMap = new Map<number, number>()
  const previous = await loadMap(trx, 'user')
  const existing = new Set((await trx.selectFrom('users').select('id').execute()).map(row => row.id))
  const firstWithKey = new Map<string, { id: number, username: string }>()
  const accepted: OriginalUser[] = []
  for (const user of source.users()) {
    const skip = (reason: string): void => { report.users.skipped.push({ original_id: user.id, username: user.username, reason }) }
    const mapped = previous.get(user.id)
    if (mapped !== undefined) {
      // imported before; if an operator erased it since, it stays erased
      report.users.already_imported++
      if (existing.has(mapped)) userMap.set(user.id, mapped)
      if (typeof user.username === 'string') firstWithKey.set(usernameKey(user.username), user)
      continue
    }
    if (typeof user.username !== 'string' || !isValidUsername(user.username)) {
      skip('name breaks the rules: 3 to 32 characters of a-z 0-9 _ . -')
      continue
    }
    const key = usernameKey(user.username)
    const first = firstWithKey.get(key)
    if (first !== undefined) {
      skip(`differs only in case from '${first.username}' (original id ${first.id}), which is kept`)
      continue
    }
    firstWithKey.set(key, user)
    const taken = await trx.selectFrom('users').select('username').where('username_key', '=', key).executeTakeFirst()
    if (taken !== undefined) {
      skip(`name taken on this server by '${taken.username}'`)
      continue
    }
    const hashRefusal = importRefusal(user.password_hash)
    if (hashRefusal !== undefined) {
      skip(`password hash refused: ${hashRefusal}`)
      continue
    }
    accepted.push(user)
  }
  const hashes = await storedHashes(accepted.map(user => user.password_hash), dryRun)
  for (const [i, user] of accepted.entries()) {
    const created = await trx.insertInto('users')
      .values({ username: user.username, username_key: usernameKey(user.username), password_hash: hashes[i]!, created_at: now })
      .returning('id').executeTakeFirstOrThrow()
    await trx.insertInto('import_map').values({ kind: 'user', original_id: user.id, new_id: created.id }).execute()
    userMap.set(user.id, created.id)
    report.users.imported++
  }

  for (const key of source.publicKeys()) {
    const userId = userMap.get(key.user_id)
    if (userId === undefined) { report.public_keys.skipped_with_user++; continue }
    const keyRefusal = refusal.key(key.public_key)
    if (keyRefusal !== undefined) { report.public_keys.skipped.push({ original_id: key.user_id, reason: keyRefusal }); continue }
    const result = await trx.insertInto('public_keys').values({ user_id: userId, public_key: key.public_key, updated_at: now })
      .onConflict(oc => oc.column('user_id').doNothing()).executeTakeFirst()
    if (Number(result.numInsertedOrUpdatedRows ?? 0n) > 0) report.public_keys.imported++
    else report.public_keys.kept_existing++
  }

  await importChatRequests(trx, source.chatRequests(), userMap, report, now)

  const messageMap = await loadMap(trx, 'message')
  // the mapping rows go in batches: half the round trips of a long history
  const mapped: Array<{ kind: 'message', original_id: number, new_id: number }> = []
  const flush = async (): Promise<void> => {
    if (mapped.length > 0) await trx.insertInto('import_map').values(mapped.splice(0)).execute()
  }
  for (const message of source.messages()) {
    if (messageMap.has(message.id)) { report.messages.already_imported++; continue }
    const senderId = userMap.get(message.sender_id)
    const recipientId = userMap.get(message.recipient_id)
    if (senderId === undefined || recipientId === undefined) { report.messages.skipped_with_user++; continue }
    const blobRefusal = refusal.blob(message.sender_blob, 'sender_blob') ?? refusal.blob(message.recipient_blob, 'recipient_blob')
    if (blobRefusal !== undefined) { report.messages.skipped.push({ original_id: message.id, reason: blobRefusal }); continue }
    let createdAt = parseTime(message.timestamp)
    if (createdAt === undefined) { report.messages.unreadable_timestamps++; createdAt = now }
    const stored = await trx.insertInto('messages').values({
      sender_id: senderId,
      recipient_id: recipientId,
      user_lo: Math.min(senderId, recipientId),
      user_hi: Math.max(senderId, recipientId),
      sender_blob: message.sender_blob,
      recipient_blob: message.recipient_blob,
      created_at: createdAt
    }).returning('id').executeTakeFirstOrThrow()
    mapped.push({ kind: 'message', original_id: message.id, new_id: stored.id })
    if (mapped.length >= 500) await flush()
    report.messages.imported++
  }
  await flush()
  return report
}

/**
 * An earlier version of the import stored Werkzeug hashes as they were; each run wraps those
 * it finds (any raw Werkzeug hash here came from an import: registration never writes one),
 * unless a login replaced it meanwhile. Returns how many.
 */
async function wrapLegacyHashes (trx: Transaction<Database>, dryRun: boolean): Promise<number> {
  const rows = (await trx.selectFrom('users').select(['id', 'password_hash'])
    .where(eb => eb.or([eb('password_hash', 'like', 'pbkdf2:%'), eb('password_hash', 'like', 'scrypt:%')])).execute())
    .filter(row => isWerkzeugHash(row.password_hash))
  const wrapped = await storedHashes(rows.map(row => row.password_hash), dryRun)
  if (!dryRun) {
    for (const [i, row] of rows.entries()) {
      await trx.updateTable('users').set({ password_hash: wrapped[i]! }).where('id', '=', row.id).where('password_hash', '=', row.password_hash).execute()
    }
  }
  return rows.length
}

/**
 * What the import stores for each accepted hash: a Werkzeug hash wrapped in Argon2id (one
 * Argon2id hash each, as many at once as there are cores), an Argon2 hash as it is. A dry run
 * writes nothing and skips the work.
 */
async function storedHashes (originals: string[], dryRun: boolean): Promise<string[]> {
  const inTurn = turns(availableParallelism())
  return await Promise.all(originals.map(async stored =>
    isWerkzeugHash(stored) && !dryRun ? await inTurn(async () => await wrapWerkzeugHash(stored)) : stored))
}

/**
 * Why a value would be refused by the API's schema (checked by Ajv, as the routes check
 * bodies), in words that never quote it; undefined when it would be accepted.
 */
function refusalOf (schema: object, limitName: string): (value: unknown, field?: string) => string | undefined {
  const validate: ValidateFunction = new Ajv({ strict: false }).compile(schema)
  const words: Record<string, string> = { type: 'not text', minLength: 'empty', maxLength: `longer than ${limitName}`, pattern: 'holds a NUL character' }
  return (value, field) => {
    if (validate(value)) return undefined
    const keyword = validate.errors?.[0]?.keyword ?? ''
    return `${field === undefined ? '' : field + ': '}${words[keyword] ?? 'refused by the API\'s schema'}`
  }
}

/**
 * The original kept one row per direction; we keep one per pair. Rows of the same pair merge:
 * accepted if either was accepted, and (as a request to someone who asked you does now) two
 * pending requests in opposite directions make the pair contacts.
 */
async function importChatRequests (
  trx: Transaction<Database>, requests: OriginalRequest[], userMap: Map<number, number>, report: ImportReport, now: number
): Promise<void> {
  const pairs = new Map<string, { requester_id: number, requested_id: number, status: RequestStatus }>()
  for (const request of requests) {
    const requesterId = userMap.get(request.requester_id)
    const requestedId = userMap.get(request.requested_id)
    if (requesterId === undefined || requestedId === undefined) { report.chat_requests.skipped_with_user++; continue }
    if (requesterId === requestedId) { report.chat_requests.skipped.push({ original_id: request.id, reason: 'a request to oneself' }); continue }
    if (request.status !== 'pending' && request.status !== 'accepted') {
      report.chat_requests.skipped.push({ original_id: request.id, reason: `status '${String(request.status)}' has no equivalent here` })
      continue
    }
    const pairKey = `${Math.min(requesterId, requestedId)}:${Math.max(requesterId, requestedId)}`
    const seen = pairs.get(pairKey)
    if (seen === undefined) {
      pairs.set(pairKey, { requester_id: requesterId, requested_id: requestedId, status: request.status })
      continue
    }
    report.chat_requests.mirrors_merged++
    const mirror = seen.requester_id !== requesterId
    if (request.status === 'accepted' || mirror) seen.status = 'accepted'
  }

  for (const pair of pairs.values()) {
    const lo = Math.min(pair.requester_id, pair.requested_id)
    const hi = Math.max(pair.requester_id, pair.requested_id)
    const here = await trx.selectFrom('chat_requests').select(['id', 'status']).where('user_lo', '=', lo).where('user_hi', '=', hi).executeTakeFirst()
    if (here === undefined) {
      await trx.insertInto('chat_requests').values({ ...pair, user_lo: lo, user_hi: hi, created_at: now, updated_at: now }).execute()
      report.chat_requests.pairs_imported++
    } else if (here.status === 'pending' && pair.status === 'accepted') {
      await trx.updateTable('chat_requests').set({ status: 'accepted', updated_at: now }).where('id', '=', here.id).execute()
      report.chat_requests.pairs_accepted_now++
    } else {
      report.chat_requests.already_imported++
    }
  }
}

/**
 * The Werkzeug methods (`pbkdf2:sha256:600000`, ...) of the imported password hashes not yet
 * upgraded (wrapped or raw), the most common first, at most `most` of them; [] when none is
 * left. Read from at most 1000 such hashes.
 */
export async function werkzeugMethodsInUse (db: Kysely<Database>, most = 3): Promise<string[]> {
  const rows = await db.selectFrom('users').select('password_hash')
    .where(eb => eb.or([eb('password_hash', 'like', '$cc-wrapped$%'), eb('password_hash', 'like', 'pbkdf2:%'), eb('password_hash', 'like', 'scrypt:%')]))
    .limit(1000).execute()
  const counts = new Map<string, number>()
  for (const { password_hash: stored } of rows) {
    const method = werkzeugMethod(stored)
    if (method !== undefined) counts.set(method, (counts.get(method) ?? 0) + 1)
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, most).map(([method]) => method)
}
