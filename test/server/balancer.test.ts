import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { PASSWORD, freshDatabaseEnv, postgresUrl, redisUrl } from '../helper.js'
import { haproxy, listening, startHaproxy, startServer, stopProcess, until, type ServerProcess } from '../processes.js'

// The scaled shape of compose.yaml (profile `scaled`) on this machine: Debian's haproxy
// running deploy/haproxy.cfg, the very file the compose balancer mounts, in front of two
// real server processes on one PostgreSQL schema and the machine's Redis, with TRUST_PROXY
// set to the balancer's address. Every client request goes through the balancer, each
// client from a loopback address of its own (all of 127/8 is the loopback interface), so
// that the servers can tell clients apart only by the X-Forwarded-For the balancer sets.

const skip = postgresUrl === undefined
  ? 'DATABASE_URL is not PostgreSQL'
  : redisUrl === undefined ? 'REDIS_URL is not set' : haproxy === undefined ? 'haproxy is not installed' : false

// a client address of its own for each client (the balancer connects from 127.0.0.1)
let hosts = 0
const newAddress = (): string => `127.1.0.${++hosts}`

interface Person { name: string, token: string, from: string }
interface Answer { status: number, body: any }

/** One request through the balancer, from the loopback address `from`, on a connection of its own. */
async function request (base: string, from: string, method: string, path: string, options: { body?: unknown, token?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
  const headers: Record<string, string> = { ...options.headers }
  if (payload !== undefined) headers['content-type'] = 'application/json'
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  const req = http.request(`${base}${path}`, { method, headers, localAddress: from, agent: false })
  req.end(payload)
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  let text = ''
  for await (const chunk of res) text += String(chunk)
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  return { status: res.statusCode ?? 0, body }
}

interface Shape {
  base: string
  servers: ServerProcess[]
  balancer: { child: ChildProcess, output: () => string }
}

/** Two server processes on a fresh schema and one Redis prefix, behind haproxy running deploy/haproxy.cfg. */
async function startShape (t: Test): Promise<Shape> {
  const env = {
    ...await freshDatabaseEnv(t),
    REDIS_URL: redisUrl ?? '',
    // a Redis namespace of this run's own: rate-limit counters outlive a run
    REDIS_PREFIX: `test-${randomBytes(6).toString('hex')}:`,
    JWT_SECRET: randomBytes(36).toString('base64'),
    // the balancer connects to the servers from 127.0.0.1; every client comes from elsewhere in 127/8
    TRUST_PROXY: '127.0.0.1',
    // info: listening() reads the address from the "Server listening at" line
    LOG_LEVEL: 'info',
    RATE_LIMIT: 'on',
    RATE_LIMIT_LOGIN: '2/hour',
    RATE_LIMIT_REGISTER: '1000/hour',
    RATE_LIMIT_REQUEST_CHAT: '1000/hour',
    RATE_LIMIT_ACCEPT_CHAT: '1000/hour',
    RATE_LIMIT_SEND_MESSAGE: '10000/hour',
    RATE_LIMIT_SEND_MESSAGE_SENDER: '10000/hour',
    RATE_LIMIT_SEND_MESSAGE_PAIR: '10000/hour'
  }
  const servers = [startServer(env), startServer(env)]
  t.teardown(async () => { await Promise.all(servers.map(async server => { await stopProcess(server.child) })) })
  const [a, b] = await Promise.all(servers.map(listening))
  const { base, child, output } = await startHaproxy(t, new URL(a ?? '').host, new URL(b ?? '').host)
  return { base, servers, balancer: { child, output } }
}

/** The body of an answer, after checking its status (the body is shown only when the status is wrong: it may hold a token). */
async function answered (t: Test, answer: Promise<Answer>, status: number, what: string): Promise<any> {
  const { status: got, body } = await answer
  t.equal(got, status, what, got === status ? {} : { body })
  return body
}

/** Registers and logs in a user from an address of its own, through the balancer. */
async function person (t: Test, base: string, name: string): Promise<Person> {
  const from = newAddress()
  const credentials = { username: name, password: PASSWORD }
  await answered(t, request(base, from, 'POST', '/register', { body: credentials }), 201, `register ${name}`)
  const { token } = await answered(t, request(base, from, 'POST', '/login', { body: credentials }), 200, `login ${name}`)
  return { name, token, from }
}

/** Two users who are contacts, made through the balancer. */
async function contacts (t: Test, base: string, a: string, b: string): Promise<[Person, Person]> {
  const alice = await person(t, base, a)
  const bob = await person(t, base, b)
  await answered(t, request(base, alice.from, 'POST', '/request_chat', { token: alice.token, body: { recipient_username: bob.name } }), 201, 'request_chat')
  await answered(t, request(base, bob.from, 'POST', '/accept_chat', { token: bob.token, body: { requester_username: alice.name } }), 200, 'accept_chat')
  return [alice, bob]
}

/**
 * A device of a user, as a client app behaves: a socket through the balancer that, whenever
 * it closes, reconnects with the cursor of the last event it processed.
 */
class Device {
  /** The ids of the message events received, in the order received. */
  readonly messages: number[] = []
  readonly errors: unknown[] = []
  /** Sockets opened (each one replays from the cursor, then says ready). */
  readies = 0
  /** Open sockets that closed without this device closing them. */
  drops = 0
  #cursor: string | undefined
  #socket: WebSocket | undefined
  #stopped = false

  constructor (private readonly base: string, private readonly user: Person) {}

  /** Connects, and resolves once the first socket has replayed what came before. */
  async start (): Promise<void> {
    this.#connect()
    await until(() => this.readies > 0, `${this.user.name}'s socket is ready`)
  }

  #connect (): void {
    const query = this.#cursor === undefined ? '' : `?since=${this.#cursor}`
    const socket = new WebSocket(`${this.base.replace(/^http/, 'ws')}/ws${query}`, ['bearer', this.user.token], { localAddress: this.user.from })
    this.#socket = socket
    let opened = false
    socket.on('open', () => { opened = true })
    socket.on('message', data => {
      const frame = JSON.parse(String(data))
      if (frame.type === 'message') this.messages.push(frame.message.id)
      if (frame.type === 'ready') this.readies++
      if (frame.type === 'error') this.errors.push(frame)
      if (typeof frame.cursor === 'string') this.#cursor = frame.cursor
    })
    // a refused upgrade or a dropped connection: 'close' follows, and a new socket after it
    socket.on('error', () => {})
    socket.on('close', () => {
      if (this.#stopped) return
      if (opened) this.drops++
      setTimeout(() => { if (!this.#stopped) this.#connect() }, 100)
    })
  }

  async stop (): Promise<void> {
    this.#stopped = true
    const socket = this.#socket
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) return
    const closed = once(socket, 'close')
    socket.close()
    await closed
  }
}

/**
 * Sends `from` -> `to` through the balancer, one message after another, until `done()`; a send
 * that fails (the balancer's 502, a reset connection) is retried with the same client_msg_id,
 * so that it is stored once whether or not the failed attempt was. Every message's id, in the
 * order of the 201s, goes into `acknowledged`.
 */
async function sendUntil (base: string, from: Person, to: Person, acknowledged: number[], done: () => boolean): Promise<number> {
  let retries = 0
  for (let i = 0; !done(); i++) {
    const body = { recipient_username: to.name, sender_blob: `s${i}`, recipient_blob: `r${i}`, client_msg_id: `m-${i}` }
    for (let attempt = 1; ; attempt++) {
      const answer = await request(base, from.from, 'POST', '/send_message', { token: from.token, body }).catch((error: Error) => ({ status: 0, body: error.message }))
      if (answer.status === 201) {
        acknowledged.push(answer.body.id)
        break
      }
      if ((answer.status > 0 && answer.status < 500) || attempt === 50) throw new Error(`send ${i}, attempt ${attempt}: ${answer.status} ${JSON.stringify(answer.body)}`)
      retries++
      await sleep(100)
    }
  }
  return retries
}

// two server starts from the TypeScript sources (up to 2 minutes each on a loaded machine),
// then a 30 s long-poll: more than the default time per file
t.setTimeout(5 * 60_000)

t.test('two instances behind the balancer (deploy/haproxy.cfg) act as one service', { skip }, async t => {
  const { base, servers, balancer } = await startShape(t)
  t.teardown(() => { if (t.passing() === false) t.comment(`haproxy: ${balancer.output().slice(-2000)}`) })

  // a long-poll with nothing to wake it, waiting beside the next tests: the balancer must let
  // it wait its whole 30 s (the server's longest) rather than cut it with a 504
  const quiet = await person(t, base, 'quiet')
  const longPoll = request(base, quiet.from, 'GET', '/sync?timeout=30', { token: quiet.token })

  await t.test('register, login and contacts work through the balancer', async t => {
    t.same(await answered(t, request(base, newAddress(), 'GET', '/readyz'), 200, 'readyz'), { status: 'ready', hub: 'connected' }, 'pushes travel through Redis')
    const [alice, bob] = await contacts(t, base, 'alice', 'bob')
    const list = await answered(t, request(base, alice.from, 'GET', '/get_contacts', { token: alice.token }), 200, 'get_contacts')
    t.same(list.contacts, [bob.name])
    // requests land on either instance: each one knows the other's session (one JWT secret, one database)
    for (let i = 0; i < 4; i++) {
      const again = await answered(t, request(base, bob.from, 'GET', '/get_contacts', { token: bob.token }), 200, `get_contacts, ${i}`)
      t.same(again.contacts, [alice.name])
    }
  })

  await t.test('a WebSocket upgrade passes the balancer; its socket and a long-poll get what is sent through it', async t => {
    const [carol, dave] = await contacts(t, base, 'carol', 'dave')
    const socket = new Device(base, dave)
    await socket.start()
    t.teardown(async () => { await socket.stop() })
    const sent = await answered(t, request(base, carol.from, 'POST', '/send_message', { token: carol.token, body: { recipient_username: dave.name, sender_blob: 's', recipient_blob: 'r' } }), 201, 'send_message')
    await until(() => socket.messages.length > 0, 'the socket gets the message')
    t.same(socket.messages, [sent.id])

    const { next } = await answered(t, request(base, dave.from, 'GET', '/sync', { token: dave.token }), 200, 'sync')
    const polled = request(base, dave.from, 'GET', `/sync?since=${next}&timeout=30`, { token: dave.token })
    const second = await answered(t, request(base, carol.from, 'POST', '/send_message', { token: carol.token, body: { recipient_username: dave.name, sender_blob: 's', recipient_blob: 'r' } }), 201, 'send_message')
    const { events } = await answered(t, polled, 200, 'the long-poll')
    t.same(events.map((event: any) => event.message?.id), [second.id], 'the long-poll answers with the message')
    t.same(socket.errors, [])
  })

  await t.test('each client is known by its own address: one client\'s per-IP limit does not limit another', async t => {
    // RATE_LIMIT_LOGIN is 2/hour per client address, counted in Redis by both instances
    const erin = await person(t, base, 'erin') // one login from erin's address
    const credentials = { username: erin.name, password: PASSWORD }
    await answered(t, request(base, erin.from, 'POST', '/login', { body: credentials }), 200, 'second login from erin\'s address')
    const limited = await answered(t, request(base, erin.from, 'POST', '/login', { body: credentials }), 429, 'third login from erin\'s address')
    t.equal(limited.code, 'RATE_LIMITED')
    const elsewhere = newAddress()
    await answered(t, request(base, elsewhere, 'POST', '/login', { body: credentials }), 200, 'the same login from another address has its own budget')
    // what a client claims is not believed: the balancer replaces its X-Forwarded-For
    await answered(t, request(base, erin.from, 'POST', '/login', { body: credentials, headers: { 'x-forwarded-for': newAddress() } }), 429, 'erin\'s address claiming to be another')
  })

  await t.test('a long-poll is not cut by the balancer before the server answers it', async t => {
    const { events } = await answered(t, longPoll, 200, 'the 30 s long-poll')
    t.same(events, [])
  })

  await t.test('one instance killed (SIGKILL) while clients are connected: they reconnect to the other, resume from their cursors, and no acknowledged message is missing', async t => {
    const [alice, bob] = await contacts(t, base, 'alice2', 'bob2')
    // two devices of bob's: the balancer puts their sockets on the two instances
    const phone = new Device(base, bob)
    const laptop = new Device(base, bob)
    await phone.start()
    await laptop.start()
    t.teardown(async () => { await Promise.all([phone.stop(), laptop.stop()]) })

    // alice sends without pause before, during and after the kill
    const acknowledged: number[] = []
    let stop = false
    const sending = sendUntil(base, alice, bob, acknowledged, () => stop)
    sending.catch(() => {}) // awaited below
    await until(() => acknowledged.length >= 20, '20 messages are acknowledged before the kill')
    // each instance logs the requests it answers: both took sends, so before the kill every
    // message reached one of bob's sockets from the other instance (through the Redis hub)
    // (their lines are written in chunks, at most 100 ms late: logging.ts)
    const sends = (): number[] => servers.map(server => server.output().split('"route":"/send_message"').length - 1)
    await until(() => sends().every(count => count > 0), 'both instances log sends they answered', 5000).catch(() => {})
    const counts = sends()
    t.ok(counts.every(count => count > 0), `both instances answered sends before the kill (${counts.join(' and ')})`)
    await stopProcess(servers[0]?.child as ChildProcess, 'SIGKILL')
    const atKill = acknowledged.length
    await until(() => phone.drops + laptop.drops > 0, 'the socket on the killed instance drops')
    await until(() => phone.readies + laptop.readies === 3 && acknowledged.length >= atKill + 20, 'it reconnects, and 20 more messages are acknowledged')
    stop = true
    const retries = await sending

    await until(() => phone.messages.length >= acknowledged.length && laptop.messages.length >= acknowledged.length, 'both devices have caught up')
    t.equal(phone.drops + laptop.drops, 1, 'one socket dropped: the two were on different instances')
    t.same(phone.messages, acknowledged, 'the phone got every acknowledged message once, in order')
    t.same(laptop.messages, acknowledged, 'the laptop got every acknowledged message once, in order')
    t.same([...phone.errors, ...laptop.errors], [], 'no error frame (a cursor the surviving instance would not know)')
    const { messages } = await answered(t, request(base, bob.from, 'GET', `/get_messages?username=${alice.name}&limit=1000`, { token: bob.token }), 200, 'get_messages')
    t.same(messages.map((message: { id: number }) => message.id), acknowledged, 'the database holds each message once: a retried send stored nothing twice')
    t.comment(`${acknowledged.length} messages, ${atKill} before the kill; ${retries} send(s) retried after a failure`)
  })
})
