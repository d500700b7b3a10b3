import t from 'tap'
import { befriend, build, call, user } from '../helper.js'
import { Client, listen } from '../realtime-helper.js'

// Many sockets opened at once, each with a long stream to replay, all reach `ready` with
// their whole stream (a reader of one must not hold up the others).

t.test('sockets opened together each replay their whole stream, then ready', async t => {
  const app = await build(t)
  const base = await listen(app)
  const people: Array<{ name: string, token: string }> = []
  for (let i = 0; i < 8; i++) people.push({ name: `user${i}`, token: await user(app, `user${i}`) })
  for (let i = 0; i < 8; i += 2) await befriend(app, people[i]!, people[i + 1]!)
  // 100 messages from each even user to the next one, sent concurrently as load would
  await Promise.all(Array.from({ length: 400 }, async (_, k) => {
    const from = people[(k % 4) * 2]!
    const to = people[(k % 4) * 2 + 1]!
    const res = await call(app, from.token, { method: 'POST', url: '/send_message', payload: { recipient_username: to.name, sender_blob: 'x'.repeat(160), recipient_blob: 'y'.repeat(160) } })
    if (res.statusCode !== 201) throw new Error(`send: ${res.statusCode} ${res.body}`)
  }))
  const clients = await Promise.all(people.map(async p => await Client.open(base, p.token)))
  t.teardown(async () => { await Promise.all(clients.map(async c => { await c.close() })) })
  const replays = await Promise.all(clients.map(async c => await c.until('ready')))
  for (const [i, frames] of replays.entries()) {
    // chat_request or chat_accepted, then 100 messages, then ready
    t.equal(frames.filter(f => f.type === 'message').length, 100, `${people[i]!.name} replayed its 100 messages`)
  }
})
