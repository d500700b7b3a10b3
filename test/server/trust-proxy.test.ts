import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { buildApp, serverOptions } from '../../app.js'
import { build, capturedLogs, testConfig } from '../helper.js'
import { haproxy, startHaproxy } from '../processes.js'

// TRUST_PROXY decides which address is "the client": the one the last trusted proxy saw.
// First on a bare Fastify with the server's options and a route that shows what it made of a
// request; then the whole server behind Debian's HAProxy (deploy/haproxy.cfg), where the
// per-IP login limit shows which client a request was counted against.

interface Seen { ip: string, ips: string[], host: string, protocol: string }

async function probe (t: Test, trustProxy: string): Promise<(remoteAddress: string, forwardedFor?: string, headers?: Record<string, string>) => Promise<Seen>> {
  const app = Fastify(serverOptions(await testConfig(t, { TRUST_PROXY: trustProxy })))
  app.get('/probe', async request => ({ ip: request.ip, ips: request.ips ?? [], host: request.host, protocol: request.protocol }))
  await app.ready()
  t.teardown(async () => { await app.close() })
  return async (remoteAddress, forwardedFor, headers = {}) => {
    const forwarded: Record<string, string> = forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }
    return (await app.inject({ method: 'GET', url: '/probe', remoteAddress, headers: { ...headers, ...forwarded } })).json()
  }
}

t.test('false: the peer is the client, whatever it claims', async t => {
  const seen = await probe(t, 'false')
  t.equal((await seen('10.0.0.1', '6.6.6.6')).ip, '10.0.0.1')
  t.match(await seen('10.0.0.1', '6.6.6.6', { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }), { host: 'localhost:80', protocol: 'http' })
})

t.test('a hop count N: the Nth address from the right of [X-Forwarded-For..., peer]', async t => {
  const one = await probe(t, '1')
  t.equal((await one('10.0.0.1', '203.0.113.5')).ip, '203.0.113.5', 'one proxy: the address it saw')
  t.equal((await one('10.0.0.1', '6.6.6.6, 203.0.113.5')).ip, '203.0.113.5', 'what the client wrote to the left is not believed')
  t.same((await one('10.0.0.1', '6.6.6.6, 203.0.113.5')).ips, ['10.0.0.1', '203.0.113.5'])
  t.equal((await one('10.0.0.1')).ip, '10.0.0.1', 'no header: the peer')

  const two = await probe(t, '2')
  // client 203.0.113.7 -> outer proxy 10.0.0.9 (appends the client) -> inner proxy 10.0.0.2 (appends 10.0.0.9) -> server
  t.equal((await two('10.0.0.2', '6.6.6.6, 203.0.113.7, 10.0.0.9')).ip, '203.0.113.7', 'two chained proxies')
  t.same((await two('10.0.0.2', '6.6.6.6, 203.0.113.7, 10.0.0.9')).ips, ['10.0.0.2', '10.0.0.9', '203.0.113.7'])
  t.equal((await two('10.0.0.2', '203.0.113.8')).ip, '203.0.113.8', 'a shorter chain: the leftmost there is')
  t.equal((await one('10.0.0.1', '6.6.6.6, 203.0.113.5', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'chat.example.org' })).protocol, 'https', 'the trusted peer tells the protocol')
})

t.test('true: one hop, never the leftmost entry a client wrote', async t => {
  const seen = await probe(t, 'true')
  t.equal((await seen('10.0.0.1', '6.6.6.6, 203.0.113.5')).ip, '203.0.113.5')
  t.equal((await seen('10.0.0.1', '203.0.113.5')).ip, '203.0.113.5')
})

t.test('addresses and CIDRs: only those peers are believed', async t => {
  const seen = await probe(t, '10.0.0.1, 10.0.0.9')
  t.equal((await seen('10.0.0.1', '6.6.6.6, 203.0.113.9, 10.0.0.9')).ip, '203.0.113.9', 'two trusted proxies, then the client')
  t.equal((await seen('198.51.100.1', '6.6.6.6')).ip, '198.51.100.1', 'a client reaching the server directly cannot claim an address')
  t.match(await seen('198.51.100.1', '6.6.6.6', { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }), { host: 'localhost:80', protocol: 'http' })
  const cidr = await probe(t, '10.0.0.0/8')
  t.equal((await cidr('10.1.2.3', '6.6.6.6, 203.0.113.10, 10.9.9.9')).ip, '203.0.113.10')
  t.equal((await cidr('198.51.100.1', '6.6.6.6')).ip, '198.51.100.1')
})

t.test('true or a hop count warns at start; addresses do not', async t => {
  for (const [form, warned] of [['true', true], ['2', true], ['10.0.0.1', false], ['false', false]] as const) {
    const config = await testConfig(t, { TRUST_PROXY: form, LOG_LEVEL: 'warn' })
    const { logger, lines } = capturedLogs(config)
    const app = await buildApp(config, { logger })
    await app.close()
    t.equal(lines.some(line => line.level === 40 && /TRUST_PROXY/.test(line.msg)), warned, `TRUST_PROXY=${form}`)
  }
})

// --- behind a real HAProxy -----------------------------------------------------------------

/** A login (unknown name, so 401) from loopback address `from`; 429 once that client's budget is spent. */
async function login (base: string, from: string, forwardedFor?: string): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (forwardedFor !== undefined) headers['x-forwarded-for'] = forwardedFor
  const req = http.request(`${base}/login`, { method: 'POST', headers, localAddress: from, agent: false })
  req.end(JSON.stringify({ username: `nobody${randomBytes(4).toString('hex')}`, password: 'whatever1' }))
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  res.resume()
  return res.statusCode ?? 0
}

/** The app (listening on a real socket) with TRUST_PROXY, behind haproxy running deploy/haproxy.cfg (both backends are this one server). */
async function behindHaproxy (t: Test, trustProxy: string): Promise<{ proxied: string, direct: string }> {
  const app = await build(t, { TRUST_PROXY: trustProxy, RATE_LIMIT: 'on', RATE_LIMIT_LOGIN: '1/hour' })
  const direct = await app.listen({ host: '127.0.0.1', port: 0 })
  const host = new URL(direct).host
  const { base: proxied } = await startHaproxy(t, host, host)
  return { proxied, direct }
}

let hosts = 0
const newAddress = (): string => `127.1.0.${++hosts}`

// HAProxy connects from 127.0.0.1 and writes the client's address into X-Forwarded-For
for (const form of ['127.0.0.1', '127.0.0.0/24', '1', 'true']) {
  t.test(`TRUST_PROXY=${form} behind HAProxy: each client has its own budget, a forged header buys none`, { skip: haproxy === undefined ? 'haproxy is not installed' : false }, async t => {
    const { proxied } = await behindHaproxy(t, form)
    const alice = newAddress()
    const bob = newAddress()
    t.equal(await login(proxied, alice), 401)
    t.equal(await login(proxied, alice, '6.6.6.6'), 429, 'alice, claiming another address, is still alice')
    t.equal(await login(proxied, bob), 401, 'bob has his own budget')
    t.equal(await login(proxied, newAddress(), alice), 401, 'claiming to be alice does not spend her budget')
  })
}

t.test('TRUST_PROXY=false behind HAProxy: every client is the balancer', { skip: haproxy === undefined ? 'haproxy is not installed' : false }, async t => {
  const { proxied } = await behindHaproxy(t, 'false')
  t.equal(await login(proxied, newAddress()), 401)
  t.equal(await login(proxied, newAddress()), 429, 'one budget for all: what TRUST_PROXY is for')
})

t.test('TRUST_PROXY=<the balancer> : a client reaching the server directly cannot claim an address', { skip: haproxy === undefined ? 'haproxy is not installed' : false }, async t => {
  const { direct } = await behindHaproxy(t, '127.0.0.1')
  const mallory = newAddress()
  t.equal(await login(direct, mallory, '6.6.6.6'), 401)
  t.equal(await login(direct, mallory, '7.7.7.7'), 429, 'known by the address it connects from')
})
