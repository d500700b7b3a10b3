import t from 'tap'
import { befriend, build, call, user } from '../helper.js'

// readConversation reads a rounded-up number of rows (a literal LIMIT from a small set)
// and keeps `limit` of them: every limit must still give exactly its page and a true has_more.

t.test('every limit returns exactly its page, and paging sees each message once', async t => {
  const app = await build(t)
  const alice = { name: 'alice', token: await user(app, 'alice') }
  const bob = { name: 'bob', token: await user(app, 'bob') }
  await befriend(app, alice, bob)
  const sent: number[] = []
  for (let i = 0; i < 23; i++) {
    const from = i % 2 === 0 ? alice : bob
    const res = await call(app, from.token, { method: 'POST', url: '/send_message', payload: { recipient_username: from === alice ? 'bob' : 'alice', sender_blob: `s${i}`, recipient_blob: `r${i}` } })
    t.equal(res.statusCode, 201)
    sent.push(res.json().id)
  }

  for (const limit of [1, 2, 3, 9, 10, 11, 20, 22, 23, 24, 50, 100, 101, 1000]) {
    const res = await call(app, alice.token, { method: 'GET', url: `/get_messages?username=bob&limit=${limit}` })
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.same(body.messages.map((m: { id: number }) => m.id), sent.slice(0, limit), `limit ${limit}: the first ${Math.min(limit, 23)} ids`)
    t.equal(body.has_more, limit < 23, `limit ${limit}: has_more`)
  }

  for (const limit of [1, 4, 10, 22]) {
    const seen: number[] = []
    let since = 0
    for (let page = 0; page < 30; page++) {
      const body = (await call(app, bob.token, { method: 'GET', url: `/get_messages?username=alice&since_id=${since}&limit=${limit}` })).json()
      seen.push(...body.messages.map((m: { id: number }) => m.id))
      if (!body.has_more) break
      since = seen.at(-1) ?? since
    }
    t.same(seen, sent, `paging by ${limit} sees every message once, in order`)
  }
})
