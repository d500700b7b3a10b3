import t from 'tap'
import { build, isError, redisUrl } from './helper.js'

// With REDIS_URL the per-IP counters are shared by every instance. Runs when REDIS_URL
// is set (.ci/run sets it and checks that Redis answers).

const skip = redisUrl === undefined ? 'REDIS_URL is not set' : false

t.test('two instances share one budget through Redis', { skip }, async t => {
  const env = { RATE_LIMIT: 'on', RATE_LIMIT_LOGIN: '3/hour', REDIS_URL: redisUrl ?? '', REDIS_PREFIX: `test-${Date.now()}:` }
  const one = await build(t, env)
  const two = await build(t, env)
  // a fresh address per run, so that counters left by an earlier run do not count
  const ip = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`
  const login = async (app: typeof one): Promise<Awaited<ReturnType<typeof one.inject>>> =>
    await app.inject({ method: 'POST', url: '/login', payload: { username: 'nobody', password: 'whatever1' }, remoteAddress: ip })
  t.equal((await login(one)).statusCode, 401)
  t.equal((await login(two)).statusCode, 401)
  t.equal((await login(one)).statusCode, 401)
  const limited = await login(two)
  isError(t, limited, 429, 'RATE_LIMITED')
  t.equal(limited.headers['x-ratelimit-limit'], '3')
})
