import t from 'tap'
import { buildApp } from '../app.js'
import { capturedLogs, testConfig } from './helper.js'

// One log line per request, written when it completes, with what Fastify's two lines held;
// the token in the Authorization header never reaches the log.

t.test('each request logs one line with method, url, status and time', async t => {
  const config = await testConfig(t, { LOG_LEVEL: 'info' })
  const { logger, lines } = capturedLogs(config)
  const app = await buildApp(config, { logger })
  t.teardown(async () => { await app.close() })
  lines.length = 0

  const res = await app.inject({ method: 'GET', url: '/get_key?username=alice', headers: { authorization: 'Bearer aaa.bbb.ccc' } })
  t.equal(res.statusCode, 401)
  await app.inject({ method: 'GET', url: '/healthz' }) // logged at warn only
  const requestLines = lines.filter(line => line.reqId !== undefined && line.msg !== undefined && /request/.test(line.msg))
  t.equal(requestLines.length, 1, JSON.stringify(lines))
  const [line] = requestLines
  t.equal(line?.msg, 'request completed')
  t.match(line, { level: 30, req: { method: 'GET', url: '/get_key?username=alice' }, res: { statusCode: 401 } })
  t.type(line?.responseTime, 'number')
  t.notMatch(JSON.stringify(lines), /aaa\.bbb\.ccc/, 'the token is not logged')
})
