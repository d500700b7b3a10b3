import t from 'tap'
import { build, devicesOf } from '../helper.js'
import { idOf, pair, send, sync } from '../realtime-helper.js'

// On PostgreSQL, concurrent writers commit in any order: each user's stream must still be
// numbered without gaps or duplicates, and hold every message exactly once.
t.test('concurrent sends between two users give each a gap-free stream with every message once', async t => {
  const app = await build(t)
  const [alice, bob] = await pair(app)
  const sends = await Promise.all(Array.from({ length: 30 }, async (_, i) => i % 2 === 0 ? await send(app, alice, bob) : await send(app, bob, alice)))
  const ids = sends.map(res => res.json().id).sort((a, b) => a - b)
  for (const person of [alice, bob]) {
    const userId = await idOf(app, person.name)
    const rows = await app.db.selectFrom('events').select('seq').where('device_id', 'in', devicesOf(app.db, userId)).orderBy('seq').execute()
    t.same(rows.map(row => row.seq), Array.from({ length: rows.length }, (_, i) => i + 1), `${person.name}: seqs 1..n`)
    const { events } = await sync(t, app, person.token, { limit: 1000 })
    t.same(events.filter(e => e.type === 'message').map(e => e.message.id).sort((a: number, b: number) => a - b), ids, `${person.name}: every message once`)
  }
})
