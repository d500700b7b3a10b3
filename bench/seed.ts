import { randomBytes } from 'node:crypto'
import { hash } from '@node-rs/argon2'
import { sql, type Kysely } from 'kysely'
import { connect, type DatabaseSettings } from '../db/connect.js'
import { acceptChat, requestChat } from '../db/contacts.js'
import { putPublicKey } from '../db/keys.js'
import { migrateToLatest } from '../db/migrate.js'
import type { Database } from '../db/schema.js'
import { createUser, type User } from '../db/users.js'

// Seeding: through the API for the main run (what a client would do), and straight into
// the database for the growth runs, where a million messages through the API would take
// longer than the whole suite may.

export const PASSWORD = 'bench password 1'

/** A blob of about the size of a short chat message encrypted and base64-encoded. */
export function blob (bytes = 120): string {
  return randomBytes(bytes).toString('base64')
}

export interface BenchUser { name: string, token: string }

export class Api {
  constructor (readonly url: string) {}

  async call (method: 'GET' | 'POST' | 'PUT', path: string, token?: string, body?: unknown): Promise<{ status: number, json: any }> {
    const res = await fetch(this.url + path, {
      method,
      headers: { ...token === undefined ? {} : { authorization: `Bearer ${token}` }, ...body === undefined ? {} : { 'content-type': 'application/json' } },
      ...body === undefined ? {} : { body: JSON.stringify(body) }
    })
    const text = await res.text()
    let json: unknown
    try { json = JSON.parse(text) } catch { json = text }
    return { status: res.status, json }
  }

  async expect (status: number, method: 'GET' | 'POST' | 'PUT', path: string, token?: string, body?: unknown): Promise<any> {
    const res = await this.call(method, path, token, body)
    if (res.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${res.status} ${JSON.stringify(res.json)}`)
    return res.json
  }

  async login (name: string): Promise<string> {
    return (await this.expect(200, 'POST', '/login', undefined, { username: name, password: PASSWORD })).token
  }

  /** Logs `name` in as a registered device: `id` names an existing one (1 gets its first registrationId so), none adds one. */
  async device (name: string, registrationId: number, id?: number): Promise<BenchUser & { deviceId: number, registrationId: number }> {
    const res = await this.expect(200, 'POST', '/login', undefined, { username: name, password: PASSWORD, device: { registrationId, ...id === undefined ? {} : { id } } })
    return { name, token: res.token, deviceId: res.device_id, registrationId }
  }

  async register (name: string): Promise<BenchUser> {
    await this.expect(201, 'POST', '/register', undefined, { username: name, password: PASSWORD })
    return { name, token: await this.login(name) }
  }

  async befriend (a: BenchUser, b: BenchUser): Promise<void> {
    await this.expect(201, 'POST', '/request_chat', a.token, { recipient_username: b.name })
    await this.expect(200, 'POST', '/accept_chat', b.token, { requester_username: a.name })
  }

  async send (from: BenchUser, to: BenchUser): Promise<number> {
    return (await this.expect(201, 'POST', '/send_message', from.token, { recipient_username: to.name, sender_blob: blob(), recipient_blob: blob() })).id
  }
}

/** In batches, so that Argon2 keeps both cores busy without a queue of hundreds. */
export async function inBatches<T, R> (items: T[], size: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += size) {
    out.push(...await Promise.all(items.slice(i, i + size).map(async (item, j) => await work(item, i + j))))
  }
  return out
}

export interface StoredHistory {
  /** the two users whose conversation the scenarios read (names; log in with PASSWORD) */
  pair: [string, string]
  /** messages in their conversation, spread evenly over the whole table */
  conversation: number
}

/**
 * A fresh database with `total` stored messages: `users` users with keys, one pair of
 * contacts whose conversation holds `conversation` messages spread over the table, and
 * the rest between other pairs. Uses the project's own connect/migrate/db modules, and
 * one set-based INSERT for the messages.
 */
export async function seedStoredMessages (
  settings: DatabaseSettings, total: number, users = 1000, conversation = 150
): Promise<StoredHistory> {
  const db = connect(settings)
  try {
    await migrateToLatest(db)
    const passwordHash = await hash(PASSWORD)
    const created: User[] = []
    for (let i = 0; i < users; i++) {
      const user = await createUser(db, `grow${i}`, passwordHash)
      if (user === undefined) throw new Error(`g${i} exists already: the database is not fresh`)
      created.push(user)
    }
    const ids = created.map(u => u.id)
    const first = ids[0] ?? 0
    if (ids.some((id, i) => id !== first + i)) throw new Error('user ids are not contiguous')
    const [lo, hi] = created as [User, User]
    for (const user of [lo, hi]) await putPublicKey(db, user, blob(32))
    await requestChat(db, lo, hi)
    await acceptChat(db, lo, hi)
    await insertMessages(db, settings.kind, total, first, users, Math.max(1, Math.floor(total / conversation)))
    if (settings.kind === 'sqlite') await sql`analyze`.execute(db)
    else await sql`analyze messages`.execute(db)
    return { pair: ['grow0', 'grow1'], conversation: Math.min(conversation, total) }
  } finally {
    await db.destroy()
  }
}

async function insertMessages (db: Kysely<Database>, kind: 'sqlite' | 'postgres', total: number, first: number, users: number, stepEvery: number): Promise<void> {
  // Row i: every step-th row belongs to the pair (first, first + 1), alternating sender;
  // the others go between two distinct users of the rest, spread evenly.
  // Literals, not parameters: better-sqlite3 binds numbers as REAL, and i / step must
  // stay an integer division.
  const rest = sql.lit(users - 2)
  const step = sql.lit(stepEvery)
  const a = sql.lit(first)
  const filler = sql.lit('A'.repeat(96))
  const now = sql.lit(Date.now() - total)
  const rows = sql`select
      case when i % ${step} = 0 then ${a} + (i / ${step}) % 2 else ${a} + 2 + i % ${rest} end as s,
      case when i % ${step} = 0 then ${a} + 1 - (i / ${step}) % 2 else ${a} + 2 + (i + 1 + (i / ${rest}) % (${rest} - 1)) % ${rest} end as r,
      i
    from series`
  const lo = kind === 'sqlite' ? sql`min(s, r)` : sql`least(s, r)`
  const hi = kind === 'sqlite' ? sql`max(s, r)` : sql`greatest(s, r)`
  const insert = sql`insert into messages (sender_id, recipient_id, user_lo, user_hi, sender_blob, recipient_blob, created_at)
    select s, r, ${lo}, ${hi}, ${filler}, ${filler}, ${now} + i from (${rows}) as m order by i`
  if (kind === 'sqlite') {
    await sql`with recursive series(i) as (select 1 union all select i + 1 from series where i < ${sql.lit(total)}) ${insert}`.execute(db)
  } else {
    await sql`with series(i) as (select generate_series(1, ${sql.lit(total)}::bigint)) ${insert}`.execute(db)
  }
}
