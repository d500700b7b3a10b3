import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { bearer, build, isError, user } from '../helper.js'
import { Client, eventually, listen } from '../realtime-helper.js'

// RATE_LIMIT_CONNECTIONS_PER_USER / _PER_ADDRESS: WebSockets and waiting long-polls held at
// once, counted by each instance. Real sockets on a listening server; every test client
// comes from 127.0.0.1, one address.

/** An upgrade that must be refused: its HTTP status, retry-after and JSON body. */
async function refusedUpgrade (base: string, token: string): Promise<{ status: number, retryAfter: string | undefined, body: any }> {
  const ws = new WebSocket(`${base}/ws`, ['bearer', token])
  return await new Promise((resolve, reject) => {
    ws.once('open', () => { ws.close(); reject(new Error('the socket opened')) })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', chunk => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: JSON.parse(body) }))
    })
  })
}

async function setup (t: Test, perUser: number, perAddress: number): Promise<{ app: FastifyInstance, base: string, http: string }> {
  const app = await build(t, { RATE_LIMIT: 'on', RATE_LIMIT_CONNECTIONS_PER_USER: String(perUser), RATE_LIMIT_CONNECTIONS_PER_ADDRESS: String(perAddress) })
  const base = await listen(app)
  return { app, base, http: base.replace('ws:', 'http:') }
}

/** Opens a socket and waits for its `ready` frame. */
async function open (base: string, token: string): Promise<Client> {
  const client = await Client.open(base, token)
  await client.until('ready')
  return client
}

t.test('sockets per user: refused with an HTTP 429 before the upgrade at the cap, allowed again once one closes or drops', async t => {
  const { app, base } = await setup(t, 2, 100)
  const alice = await user(app, 'alice')
  const bob = await user(app, 'bob')
  const first = await open(base, alice)
  const second = await open(base, alice)
  const refused = await refusedUpgrade(base, alice)
  t.equal(refused.status, 429)
  t.match(refused.body, { statusCode: 429, code: 'RATE_LIMITED', message: /^Too many open connections \(WebSockets and waiting long-polls\) for this account: at most 2 at once; close one and retry\.$/ })
  t.equal(refused.retryAfter, '30')
  const polled = await app.inject({ method: 'GET', url: '/sync', query: { timeout: '5' }, headers: bearer(alice) })
  isError(t, polled, 429, 'RATE_LIMITED')
  t.equal(polled.headers['retry-after'], '30', 'a long-poll counts with the sockets')
  t.equal((await app.inject({ method: 'GET', url: '/sync', headers: bearer(alice) })).statusCode, 200, 'a sync that does not wait holds nothing')
  const other = await open(base, bob)
  t.pass('another account has its own cap')

  await first.close()
  const third = await (async () => {
    // the count is released when the server sees the close
    for (;;) {
      try { return await open(base, alice) } catch { await new Promise(resolve => setTimeout(resolve, 20)) }
    }
  })()
  second.ws.terminate() // a peer that drops without a close frame
  await eventually(async () => {
    const probe = new WebSocket(`${base}/ws`, ['bearer', alice])
    const opened = await new Promise<boolean>(resolve => { probe.once('open', () => resolve(true)); probe.once('unexpected-response', () => resolve(false)) })
    probe.terminate()
    return opened
  })
  t.pass('a dropped socket is released too')
  await third.close()
  await other.close()
})

t.test('long-polls per user: the cap counts waiting requests, released when they answer and when the client aborts', async t => {
  const { app, http } = await setup(t, 2, 100)
  const alice = await user(app, 'alice')
  const waiting = [
    app.inject({ method: 'GET', url: '/sync', query: { timeout: '1' }, headers: bearer(alice) }),
    app.inject({ method: 'GET', url: '/sync', query: { timeout: '1' }, headers: bearer(alice) })
  ]
  await new Promise(resolve => setTimeout(resolve, 200))
  isError(t, await app.inject({ method: 'GET', url: '/sync', query: { timeout: '1' }, headers: bearer(alice) }), 429, 'RATE_LIMITED')
  for (const res of await Promise.all(waiting)) t.equal(res.statusCode, 200, 'the held long-polls answer at their timeout')
  t.equal((await app.inject({ method: 'GET', url: '/sync', query: { timeout: '1' }, headers: bearer(alice) })).statusCode, 200, 'answered long-polls are released')

  // over real connections: two long-polls of 30 s, one aborted by its client
  const aborts = [new AbortController(), new AbortController()]
  const held = aborts.map(async abort => await fetch(`${http}/sync?timeout=30`, { headers: bearer(alice), signal: abort.signal }).catch(() => undefined))
  const probe = async (): Promise<number> => (await app.inject({ method: 'GET', url: '/sync', query: { timeout: '1' }, headers: bearer(alice) })).statusCode
  // the probe must not take a slot before both long-polls have arrived
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(await probe(), 429, 'two long-polls held over real connections')
  aborts[0]?.abort()
  await eventually(async () => await probe() === 200)
  t.pass('an aborted long-poll is released')
  aborts[1]?.abort()
  await Promise.all(held)
})

t.test('per address: accounts behind one address share its cap; RATE_LIMIT=off counts nothing', async t => {
  const { app, base } = await setup(t, 5, 2)
  const sockets = [await open(base, await user(app, 'alice')), await open(base, await user(app, 'bob'))]
  const carol = await user(app, 'carol')
  const refused = await refusedUpgrade(base, carol)
  t.equal(refused.status, 429)
  t.match(refused.body.message, /for this address: at most 2 at once/)
  await sockets[0]?.close()
  await eventually(async () => {
    const probe = new WebSocket(`${base}/ws`, ['bearer', carol])
    const opened = await new Promise<boolean>(resolve => { probe.once('open', () => resolve(true)); probe.once('unexpected-response', () => resolve(false)) })
    probe.terminate()
    return opened
  })
  await sockets[1]?.close()

  const open2 = await build(t, { RATE_LIMIT: 'off', RATE_LIMIT_CONNECTIONS_PER_USER: '1' })
  const base2 = await listen(open2)
  const dave = await user(open2, 'dave')
  const many = [await open(base2, dave), await open(base2, dave), await open(base2, dave)]
  t.equal(many.length, 3, 'no cap with RATE_LIMIT=off')
  for (const socket of many) await socket.close()
})
