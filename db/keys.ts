import type { Kysely } from 'kysely'
import type { Database } from './schema.js'

/** Inserts or replaces the user's public key. */
export async function putPublicKey (db: Kysely<Database>, userId: number, publicKey: string, now = Date.now()): Promise<void> {
  await db.insertInto('public_keys')
    .values({ user_id: userId, public_key: publicKey, updated_at: now })
    .onConflict(oc => oc.column('user_id').doUpdateSet({ public_key: publicKey, updated_at: now }))
    .execute()
}

export async function getPublicKey (db: Kysely<Database>, userId: number): Promise<string | undefined> {
  const row = await db.selectFrom('public_keys').select('public_key').where('user_id', '=', userId).executeTakeFirst()
  return row?.public_key
}
