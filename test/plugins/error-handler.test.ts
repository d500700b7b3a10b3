import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import t, { type Test } from 'tap'
import { app as appPlugin, serverOptions } from '../../app.js'
import { capturedLogs, isError, testConfig } from '../helper.js'

// A fault the code did not expect (a bug, a database gone away) answers a 5xx in the one
// error shape with code INTERNAL and a message that says nothing of the fault; the fault
// itself goes to the log, on a line carrying the request's id.

const SECRET = 'the disk under /var/lib/cryptachat is on fire'

/** The whole app plus routes that fail, logging into `lines`. */
async function failingApp (t: Test): Promise<{ app: FastifyInstance, lines: Array<Record<string, any>> }> {
  const config = await testConfig(t, { LOG_LEVEL: 'info' })
  const { logger, lines } = capturedLogs(config)
  const app = Fastify({ ...serverOptions(config), logger })
  await app.register(fp(appPlugin), { config })
  app.get('/throws', async () => { throw new Error(SECRET) })
  app.get('/throws_502', async () => { throw Object.assign(new Error(SECRET), { statusCode: 502, code: 'UPSTREAM_SECRET' }) })
  app.get('/rejects_later', async () => await new Promise((_resolve, reject) => setImmediate(() => { reject(new TypeError(SECRET)) })))
  await app.ready()
  t.teardown(async () => { await app.close() })
  return { app, lines }
}

for (const [url, status] of [['/throws', 500], ['/throws_502', 502], ['/rejects_later', 500]] as const) {
  t.test(`GET ${url}: a ${status} in the one error shape, code INTERNAL, the fault logged with the request id`, async t => {
    const { app, lines } = await failingApp(t)
    lines.length = 0
    const res = await app.inject({ method: 'GET', url })
    isError(t, res, status, 'INTERNAL')
    const body = res.json()
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], 'nothing but the four fields')
    t.notMatch(res.body, /fire|cryptachat|UPSTREAM_SECRET|stack/i, 'the fault is not described to the client')
    t.match(body.error, /^(Internal Server Error|Bad Gateway)$/)

    const requestId = res.headers['x-request-id']
    t.type(requestId, 'string')
    const logged = lines.filter(line => line.level >= 50 && line.err !== undefined)
    t.ok(logged.length >= 1, 'the fault is logged at error level')
    for (const line of logged) {
      t.equal(line.reqId, requestId, 'the log line carries the request id the client was given')
      t.match(line.err, { message: SECRET }, 'and the fault itself')
      t.match(line.err.stack, /error-handler\.test\.ts/, 'with where it came from')
    }
  })
}

t.test('a client error is not logged as a fault', async t => {
  const { app, lines } = await failingApp(t)
  lines.length = 0
  isError(t, await app.inject({ method: 'POST', url: '/login', payload: {} }), 400)
  t.same(lines.filter(line => line.level >= 50), [])
})
