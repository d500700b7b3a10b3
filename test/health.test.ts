import t from 'tap'
import { build, redisUrl } from './helper.js'

t.test('healthz says the process is up; readyz that the database answers', async t => {
  const app = await build(t)
  t.same((await app.inject({ method: 'GET', url: '/healthz' })).json(), { status: 'ok' })
  t.same((await app.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ready', hub: redisUrl === undefined ? 'local' : 'connected' })
  await app.db.destroy()
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'DATABASE_UNAVAILABLE')
})
