import t from 'tap'
import { build, call, user } from '../helper.js'

// A block racing an acceptance or a request: whatever order the transactions commit in,
// a blocked pair is never left as contacts, and the blocked user can never message.

t.test('block racing accept_chat and request_chat never leaves a blocked pair in contact', async t => {
  const app = await build(t)
  const alice = await user(app, 'alice')
  const rounds = 8
  const others: string[] = []
  for (let i = 0; i < rounds; i++) others.push(await user(app, `user${i}`))
  await Promise.all(others.map(async (token, i) => {
    await call(app, token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
    // alice accepts while she blocks; the other side asks again at the same time
    await Promise.all([
      call(app, alice, { method: 'POST', url: '/accept_chat', payload: { requester_username: `user${i}` } }),
      call(app, alice, { method: 'POST', url: '/block_user', payload: { username: `user${i}` } }),
      call(app, token, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'alice' } })
    ])
  }))
  const blocks = await app.db.selectFrom('blocks').selectAll().execute()
  t.equal(blocks.length, rounds)
  t.same((await call(app, alice, { method: 'GET', url: '/get_contacts' })).json(), { contacts: [] }, 'no contact survives a block')
  t.same((await call(app, alice, { method: 'GET', url: '/get_chat_requests' })).json(), { pending_requests: [] }, 'no blocked request shows')
  const accepted = await app.db.selectFrom('chat_requests').select('id').where('status', '=', 'accepted').execute()
  t.equal(accepted.length, 0)
  for (const token of others) {
    const res = await call(app, token, { method: 'POST', url: '/send_message', payload: { recipient_username: 'alice', sender_blob: 's', recipient_blob: 'r' } })
    t.equal(res.statusCode, 403)
  }
})
