import SQLite from 'better-sqlite3'

// Reading the database of the original CryptaChat server (Flask + sqlite3, `chat_server.db`):
//   users(id, username, password_hash), public_keys(user_id, public_key),
//   chat_requests(id, requester_id, requested_id, status),
//   messages(id, sender_id, recipient_id, sender_blob, recipient_blob, timestamp)

export class OriginalDatabaseError extends Error {
  override name = 'OriginalDatabaseError'
}

const REQUIRED: Record<string, string[]> = {
  users: ['id', 'username', 'password_hash'],
  public_keys: ['user_id', 'public_key'],
  chat_requests: ['id', 'requester_id', 'requested_id', 'status'],
  messages: ['id', 'sender_id', 'recipient_id', 'sender_blob', 'recipient_blob', 'timestamp']
}

export interface OriginalUser { id: number, username: string, password_hash: string }
export interface OriginalKey { user_id: number, public_key: string }
export interface OriginalRequest { id: number, requester_id: number, requested_id: number, status: string }
export interface OriginalMessage { id: number, sender_id: number, recipient_id: number, sender_blob: string, recipient_blob: string, timestamp: unknown }

export interface OriginalDatabase {
  users: () => OriginalUser[]
  publicKeys: () => OriginalKey[]
  chatRequests: () => OriginalRequest[]
  /** oldest first, one at a time (a history can be large) */
  messages: () => IterableIterator<OriginalMessage>
  close: () => void
}

/** Opens the original's database read-only, after checking that it has the original's tables. */
export function openOriginal (file: string): OriginalDatabase {
  let source: SQLite.Database
  try {
    source = new SQLite(file, { readonly: true, fileMustExist: true })
    source.pragma('busy_timeout = 5000')
    for (const [table, columns] of Object.entries(REQUIRED)) {
      const present = new Set(source.prepare('select name from pragma_table_info(?)').pluck().all(table) as string[])
      const missing = columns.filter(column => !present.has(column))
      if (missing.length > 0) throw new OriginalDatabaseError(`${file} is not a CryptaChat database: table ${table} lacks ${missing.join(', ')}`)
    }
  } catch (error) {
    if (error instanceof OriginalDatabaseError) throw error
    throw new OriginalDatabaseError(`cannot read ${file}: ${(error as Error).message}`)
  }
  return {
    users: () => source.prepare('select id, username, password_hash from users order by id').all() as OriginalUser[],
    publicKeys: () => source.prepare('select user_id, public_key from public_keys order by user_id').all() as OriginalKey[],
    chatRequests: () => source.prepare('select id, requester_id, requested_id, status from chat_requests order by id').all() as OriginalRequest[],
    messages: () => source.prepare('select id, sender_id, recipient_id, sender_blob, recipient_blob, timestamp from messages order by id').iterate() as IterableIterator<OriginalMessage>,
    close: () => { source.close() }
  }
}
