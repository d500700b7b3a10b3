import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { turns } from '../../plugins/app/passwords.js'
import { build, isError, login, register } from '../helper.js'

// Password hashing runs at most PASSWORD_HASH_CONCURRENCY at a time, so that a storm of
// logins leaves a core to everything else.

t.test('turns: never more than the slots at once, in arrival order, a failure frees its slot', async t => {
  const inTurn = turns(2)
  let running = 0
  let most = 0
  const started: number[] = []
  const jobs = Array.from({ length: 8 }, async (_, i) => await inTurn(async () => {
    started.push(i)
    most = Math.max(most, ++running)
    await sleep(5)
    running--
    if (i === 3) throw new Error('job 3 failed')
    return i
  }))
  const results = await Promise.allSettled(jobs)
  t.equal(most, 2, 'two at most')
  t.same(started, [0, 1, 2, 3, 4, 5, 6, 7], 'in the order they came')
  t.same(results.map(r => r.status === 'fulfilled' ? r.value : 'failed'), [0, 1, 2, 'failed', 4, 5, 6, 7])
  t.equal(await inTurn(async () => 'after'), 'after', 'the failed job gave its slot back')
})

t.test('with one slot, concurrent registrations and logins all succeed in turn', async t => {
  const app = await build(t, { PASSWORD_HASH_CONCURRENCY: '1' })
  const names = ['ann', 'ben', 'cat', 'dan']
  const registered = await Promise.all(names.map(async name => await register(app, name)))
  t.same(registered.map(r => r.statusCode), [201, 201, 201, 201])
  const tokens = await Promise.all(names.map(async name => await login(app, name)))
  t.equal(tokens.filter(token => typeof token === 'string' && token.length > 0).length, 4)
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: 'ann', password: 'wrong password here' } }), 401, 'INVALID_CREDENTIALS')
})
