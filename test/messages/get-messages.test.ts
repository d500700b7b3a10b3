import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { befriend, build, call, isError, user } from '../helper.js'

async function pair (app: FastifyInstance): Promise<{ alice: string, bob: string }> {
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  await befriend(app, { name: 'alice', token: alice }, { name: 'bob', token: bob })
  return { alice, bob }
}

async function send (app: FastifyInstance, token: string, to: string, text: string): Promise<number> {
  const res = await call(app, token, { method: 'POST', url: '/send_message', payload: { recipient_username: to, sender_blob: `S:${text}`, recipient_blob: `R:${text}` } })
  return res.json().id
}

t.test('each side reads its own copy, in id order, with the sender named', async t => {
  const app = await build(t)
  const { alice, bob } = await pair(app)
  const first = await send(app, alice, 'bob', 'hello')
  const second = await send(app, bob, 'alice', 'hi')
  const forAlice = (await call(app, alice, { method: 'GET', url: '/get_messages?username=bob' })).json()
  t.same(forAlice.messages.map((m: { encrypted_blob: string }) => m.encrypted_blob), ['S:hello', 'R:hi'])
  t.equal(forAlice.has_more, false)
  const [m1, m2] = forAlice.messages
  t.match(m1, { id: first, sender_username: 'alice', sender_id: Number, recipient_id: Number, timestamp: String })
  t.match(m2, { id: second, sender_username: 'bob' })
  t.equal(m1.sender_id, m2.recipient_id)
  const forBob = (await call(app, bob, { method: 'GET', url: '/get_messages?username=ALICE' })).json()
  t.same(forBob.messages.map((m: { encrypted_blob: string }) => m.encrypted_blob), ['R:hello', 'S:hi'])
  t.notMatch(JSON.stringify(forBob), /S:hello|R:hi/, "bob never receives alice's copy")
})

t.test('since_id returns only newer messages; limit pages with has_more', async t => {
  const app = await build(t)
  const { alice, bob } = await pair(app)
  const ids: number[] = []
  for (let i = 0; i < 7; i++) ids.push(await send(app, i % 2 === 0 ? alice : bob, i % 2 === 0 ? 'bob' : 'alice', `m${i}`))
  const after = (await call(app, alice, { method: 'GET', url: `/get_messages?username=bob&since_id=${ids[4]}` })).json()
  t.same(after.messages.map((m: { id: number }) => m.id), ids.slice(5))
  const seen: number[] = []
  let since = 0
  for (let pages = 0; pages < 10; pages++) {
    const page = (await call(app, bob, { method: 'GET', url: `/get_messages?username=alice&since_id=${since}&limit=3` })).json()
    seen.push(...page.messages.map((m: { id: number }) => m.id))
    if (!page.has_more) break
    t.equal(page.messages.length, 3)
    since = page.messages.at(-1).id
  }
  t.same(seen, ids, 'paging catches up with every message once, in order')
  const latest = (await call(app, bob, { method: 'GET', url: `/get_messages?username=alice&since_id=${ids[6]}` })).json()
  t.same(latest, { messages: [], has_more: false })
})

t.test('a conversation only shows its own two parties', async t => {
  const app = await build(t)
  const { alice, bob } = await pair(app)
  const carol = await user(app, 'carol')
  await befriend(app, { name: 'alice', token: alice }, { name: 'carol', token: carol })
  await send(app, alice, 'bob', 'to bob')
  await send(app, alice, 'carol', 'to carol')
  const forBob = (await call(app, bob, { method: 'GET', url: '/get_messages?username=alice' })).json()
  t.same(forBob.messages.map((m: { encrypted_blob: string }) => m.encrypted_blob), ['R:to bob'])
  const carolBob = (await call(app, carol, { method: 'GET', url: '/get_messages?username=bob' })).json()
  t.same(carolBob.messages, [])
})

t.test('bad queries are 400s naming the parameter; unknown users are 404s', async t => {
  const app = await build(t)
  const { alice } = await pair(app)
  isError(t, await call(app, alice, { method: 'GET', url: '/get_messages?username=nobody' }), 404, 'USER_NOT_FOUND')
  const bad: Array<[string, RegExp]> = [
    ['', /username/],
    ['username=bob&since_id=-1', /since_id/],
    ['username=bob&since_id=abc', /since_id/],
    ['username=bob&since_id=1.5', /since_id/],
    ['username=bob&since_id=Infinity', /since_id/],
    ['username=bob&since_id=1e999', /since_id/],
    ['username=bob&since_id=NaN', /since_id/],
    [`username=bob&since_id=${'9'.repeat(400)}`, /since_id/],
    ['username=bob&since_id=9007199254740993', /since_id/],
    ['username=bob&since_id=1&since_id=2', /since_id/],
    ['username=bob&limit=0', /limit/],
    ['username=bob&limit=1001', /limit/],
    ['username=bob&limit=ten', /limit/],
    ['username=b%20b', /username/]
  ]
  for (const [query, field] of bad) {
    const res = await call(app, alice, { method: 'GET', url: `/get_messages?${query}` })
    isError(t, res, 400, 'VALIDATION_ERROR')
    t.match(res.json().message, field, query.slice(0, 50))
  }
})
