import t from 'tap'
import { build, user } from '../helper.js'
import { Client, eventually, hub, idOf, listen } from '../realtime-helper.js'

// A socket's ping runs on setInterval and its token expiry on setTimeout; when the socket
// closes, each is cleared with its own function and nothing of the socket keeps running.

const PING_MS = 4_321_000 // a period nothing else in the app uses, to tell the socket's timer apart
const TTL_MS = 7_654_000

t.test('a closed socket clears its ping interval with clearInterval and its expiry timeout with clearTimeout', async t => {
  const app = await build(t, { WS_PING_INTERVAL: `${PING_MS / 1000}s`, TOKEN_TTL: `${TTL_MS / 1000}s` })
  const base = await listen(app)
  const token = await user(app, 'alice')

  const intervals: NodeJS.Timeout[] = []
  const timeouts: NodeJS.Timeout[] = []
  const clearedAsInterval = new Set<unknown>()
  const clearedAsTimeout = new Set<unknown>()
  const original = { setInterval, setTimeout, clearInterval, clearTimeout }
  t.teardown(() => { Object.assign(globalThis, original) })
  Object.assign(globalThis, {
    setInterval: (fn: () => void, ms: number, ...args: unknown[]) => {
      const timer = (original.setInterval as (...all: unknown[]) => NodeJS.Timeout)(fn, ms, ...args)
      if (ms === PING_MS) intervals.push(timer)
      return timer
    },
    setTimeout: (fn: () => void, ms: number, ...args: unknown[]) => {
      const timer = (original.setTimeout as (...all: unknown[]) => NodeJS.Timeout)(fn, ms, ...args)
      // the expiry: the token's whole lifetime, give or take the time the test took so far
      if (ms > TTL_MS - 60_000 && ms <= TTL_MS) timeouts.push(timer)
      return timer
    },
    clearInterval: (timer: NodeJS.Timeout) => { clearedAsInterval.add(timer); original.clearInterval(timer) },
    clearTimeout: (timer: NodeJS.Timeout) => { clearedAsTimeout.add(timer); original.clearTimeout(timer) }
  })

  const client = await Client.open(base, token)
  await client.until('ready')
  t.equal(intervals.length, 1, 'the socket runs one ping interval')
  t.equal(timeouts.length, 1, 'and one expiry timeout')
  const aliceId = await idOf(app, 'alice')
  await client.close()
  await eventually(() => hub(app).listenerCount(aliceId) === 0)
  Object.assign(globalThis, original)

  for (const timer of intervals) {
    t.ok(clearedAsInterval.has(timer), 'the interval is cleared with clearInterval')
    t.notOk(clearedAsTimeout.has(timer), 'not with clearTimeout')
  }
  for (const timer of timeouts) t.ok(clearedAsTimeout.has(timer), 'the timeout is cleared with clearTimeout')
  const running = [...intervals, ...timeouts].filter(timer => !(timer as unknown as { _destroyed: boolean })._destroyed)
  t.equal(running.length, 0, 'no timer of the socket is left running')
})
