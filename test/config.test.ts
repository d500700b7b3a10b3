import { availableParallelism } from 'node:os'
import t from 'tap'
import { ConfigError, loadConfig } from '../config.js'

t.test('defaults follow the original server, and the limits what an active, honest user does', async t => {
  const config = loadConfig({})
  t.match(config, {
    env: 'development',
    port: 5000,
    host: '127.0.0.1',
    dataDir: './data',
    database: { kind: 'sqlite', file: './data/cryptachat.db' },
    tokenTtlSeconds: 86400,
    trustProxy: false,
    logLevel: 'info',
    maxKeyLength: 8192,
    maxBlobLength: 65536,
    rateLimit: {
      enabled: true,
      register: { max: 30, timeWindow: 3_600_000 },
      login: { max: 100, timeWindow: 3_600_000 },
      requestChat: { max: 60, timeWindow: 3_600_000 },
      acceptChat: { max: 60, timeWindow: 3_600_000 },
      sendMessage: { max: 10_000, timeWindow: 3_600_000 },
      sendMessageSender: { max: 1200, timeWindow: 3_600_000 },
      sendMessagePair: { max: 600, timeWindow: 3_600_000 },
      uploadKey: { max: 10, timeWindow: 86_400_000 },
      lookups: { max: 60, timeWindow: 3_600_000 },
      adminFailures: { max: 10, timeWindow: 3_600_000 },
      prekeys: { max: 6, timeWindow: 600_000 },
      connections: { perUser: 20, perAddress: 300 }
    }
  })
})

t.test('values are parsed from their text', async t => {
  const config = loadConfig({
    PORT: '8080',
    DATA_DIR: '/var/lib/cc',
    DATABASE_URL: 'postgres://u@db/cc',
    DATABASE_SCHEMA: 'chat',
    TOKEN_TTL: '30m',
    TRUST_PROXY: '2',
    RATE_LIMIT: 'off',
    RATE_LIMIT_SEND_MESSAGE: '1000/15m',
    RATE_LIMIT_LOGIN: '5/minute'
  })
  t.equal(config.port, 8080)
  t.same(config.database, { kind: 'postgres', url: 'postgres://u@db/cc', schema: 'chat' })
  t.equal(config.tokenTtlSeconds, 1800)
  t.equal(config.trustProxy, 2)
  t.equal(config.rateLimit.enabled, false)
  t.same(config.rateLimit.sendMessage, { max: 1000, timeWindow: 900_000 })
  t.same(config.rateLimit.login, { max: 5, timeWindow: 60_000 })
  t.same(loadConfig({ DATABASE_URL: 'sqlite::memory:' }).database, { kind: 'sqlite', file: ':memory:' })
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8,127.0.0.1' }).trustProxy, '10.0.0.0/8,127.0.0.1')
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.1, fd00::/8' }).trustProxy, '10.0.0.1, fd00::/8')
  t.throws(() => loadConfig({ TRUST_PROXY: '10.0.0.1,proxy.example' }), /TRUST_PROXY/, 'a name is not an address')
  t.throws(() => loadConfig({ TRUST_PROXY: '10.0.0.0/33' }), /TRUST_PROXY: "10.0.0.0\/33" is not an IP address or a CIDR/)
  t.throws(() => loadConfig({ TRUST_PROXY: '300.0.0.1' }), /TRUST_PROXY/)
  t.same(loadConfig({}).timeouts, { requestSeconds: 30, headersSeconds: 10, keepAliveSeconds: 72 })
  t.same(loadConfig({ REQUEST_TIMEOUT: '1m', HEADERS_TIMEOUT: '5', KEEP_ALIVE_TIMEOUT: '5s' }).timeouts, { requestSeconds: 60, headersSeconds: 5, keepAliveSeconds: 5 })
  t.throws(() => loadConfig({ HEADERS_TIMEOUT: '1m' }), /HEADERS_TIMEOUT: must not exceed REQUEST_TIMEOUT/)
  t.throws(() => loadConfig({ REQUEST_TIMEOUT: '0' }), /REQUEST_TIMEOUT: must be at least 1 second/)
  t.throws(() => loadConfig({ KEEP_ALIVE_TIMEOUT: 'forever' }), /KEEP_ALIVE_TIMEOUT/)
  t.equal(loadConfig({ PORT: '' }).port, 5000, 'an empty value means unset')
  t.equal(loadConfig({}).logClientIp, 'off', 'client addresses are not logged unless asked for')
  t.equal(loadConfig({ LOG_CLIENT_IP: 'hashed' }).logClientIp, 'hashed')
  t.throws(() => loadConfig({ LOG_CLIENT_IP: 'yes' }), /LOG_CLIENT_IP="yes".*\(off, on, or hashed/)
  t.equal(loadConfig({ PASSWORD_HASH_CONCURRENCY: '3' }).passwordHashConcurrency, 3)
  t.equal(loadConfig({}).passwordHashConcurrency, Math.max(1, availableParallelism() - 1), 'by default, one core is left to the event loop')
})

t.test('every bad value is named in one error', async t => {
  let error: unknown
  try {
    loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud', RATE_LIMIT_LOGIN: 'many', DATABASE_URL: 'mysql://x', TOKEN_TTL: '1 day' })
  } catch (caught) {
    error = caught
  }
  if (!(error instanceof ConfigError)) throw new Error('expected a ConfigError')
  const text = error.problems.join('\n')
  for (const name of ['PORT', 'LOG_LEVEL', 'RATE_LIMIT_LOGIN', 'DATABASE_URL', 'TOKEN_TTL']) t.match(text, name)
  t.match(text, /"abc"/, 'the bad value is quoted')
  t.throws(() => loadConfig({ PORT: '70000' }), /PORT/)
  t.throws(() => loadConfig({ PORT: '5000.5' }), /PORT="5000.5": Expected integer/, 'a fraction is refused, not truncated')
  t.throws(() => loadConfig({ BODY_LIMIT: '1e6' }), /BODY_LIMIT/)
  t.throws(() => loadConfig({ TOKEN_TTL: '5' }), /TOKEN_TTL/)
  t.throws(() => loadConfig({ MAX_BLOB_LENGTH: '-1' }), /MAX_BLOB_LENGTH/)
  t.throws(() => loadConfig({ PASSWORD_HASH_CONCURRENCY: '0' }), /PASSWORD_HASH_CONCURRENCY/)
})

t.test('a weak JWT_SECRET set on purpose is refused everywhere but NODE_ENV=test', async t => {
  for (const NODE_ENV of [undefined, 'development', 'production']) {
    for (const weak of ['changeme', 'secret', 'x'.repeat(40), 'your-super-secret-jwt-key-change-me-in-production', 'my-example-secret-9f8e7d6c5b4a3210']) {
      t.throws(() => loadConfig({ NODE_ENV, JWT_SECRET: weak }), /JWT_SECRET: too weak or a placeholder; use at least 32 random characters/, `${NODE_ENV ?? 'default'}: ${weak}`)
    }
  }
  t.equal(loadConfig({ NODE_ENV: 'test', JWT_SECRET: 'secret' }).jwtSecret, 'secret', 'tests may use any secret')
  t.equal(loadConfig({ NODE_ENV: 'development' }).jwtSecret, undefined, 'unset outside production: one is generated')
  const strong = 'kJ8s-2nQ_vX9pL4mR7tY1wZ3cB6eH0gF5dA'
  t.equal(loadConfig({ NODE_ENV: 'development', JWT_SECRET: strong }).jwtSecret, strong)
})

t.test('production refuses to start without a strong JWT_SECRET', async t => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_SECRET: required/)
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'secret' }), /JWT_SECRET: too weak/)
  const error = t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'secret' })) as unknown as Error
  t.notMatch(error.message, /"secret"/, 'the secret is not echoed')
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'a'.repeat(64) }), /JWT_SECRET: too weak/)
  const strong = 'kJ8s-2nQ_vX9pL4mR7tY1wZ3cB6eH0gF5dA'
  t.equal(loadConfig({ NODE_ENV: 'production', JWT_SECRET: strong }).jwtSecret, strong)
})

t.test('the failed-password budgets: per account and address, the account cap, per token', async t => {
  const config = loadConfig({ RATE_LIMIT_LOGIN_FAILURES: '5/30m', RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: '50/hour', RATE_LIMIT_SESSION_PASSWORD_FAILURES: '3/day' })
  t.same(config.rateLimit.loginFailures, { max: 5, timeWindow: 1_800_000 })
  t.same(config.rateLimit.loginFailuresAccount, { max: 50, timeWindow: 3_600_000 })
  t.same(config.rateLimit.sessionPasswordFailures, { max: 3, timeWindow: 86_400_000 })
  for (const name of ['RATE_LIMIT_LOGIN_FAILURES_ACCOUNT', 'RATE_LIMIT_SESSION_PASSWORD_FAILURES']) {
    t.throws(() => loadConfig({ [name]: 'lots' }), new RegExp(`${name}="lots"`))
  }
})

t.test('the limits of item 8: key changes, lookups, admin failures, connections held', async t => {
  const config = loadConfig({
    RATE_LIMIT_UPLOAD_KEY: '3/hour',
    RATE_LIMIT_LOOKUPS: '20/15m',
    RATE_LIMIT_ADMIN_FAILURES: '5/day',
    RATE_LIMIT_PREKEYS: '3/1h',
    RATE_LIMIT_CONNECTIONS_PER_USER: '4',
    RATE_LIMIT_CONNECTIONS_PER_ADDRESS: '50'
  })
  t.same(config.rateLimit.uploadKey, { max: 3, timeWindow: 3_600_000 })
  t.same(config.rateLimit.lookups, { max: 20, timeWindow: 900_000 })
  t.same(config.rateLimit.adminFailures, { max: 5, timeWindow: 86_400_000 })
  t.same(config.rateLimit.prekeys, { max: 3, timeWindow: 3_600_000 })
  t.same(config.rateLimit.connections, { perUser: 4, perAddress: 50 })
  for (const name of ['RATE_LIMIT_UPLOAD_KEY', 'RATE_LIMIT_LOOKUPS', 'RATE_LIMIT_ADMIN_FAILURES', 'RATE_LIMIT_PREKEYS']) {
    t.throws(() => loadConfig({ [name]: 'ten' }), new RegExp(`${name}="ten": Expected string to match`))
  }
  t.throws(() => loadConfig({ RATE_LIMIT_CONNECTIONS_PER_USER: '0' }), /RATE_LIMIT_CONNECTIONS_PER_USER="0": Expected integer to be greater or equal to 1/)
  t.throws(() => loadConfig({ RATE_LIMIT_CONNECTIONS_PER_ADDRESS: '2.5' }), /RATE_LIMIT_CONNECTIONS_PER_ADDRESS="2.5"/)
})

t.test('a limit that allows nothing is refused at start, naming the setting', async t => {
  t.throws(() => loadConfig({ RATE_LIMIT_LOOKUPS: '0/hour' }), /RATE_LIMIT_LOOKUPS="0\/hour": must allow at least 1 in a window of at least 1 second \(RATE_LIMIT=off lifts every limit\)/)
  t.throws(() => loadConfig({ RATE_LIMIT_SEND_MESSAGE: '5/0s' }), /RATE_LIMIT_SEND_MESSAGE="5\/0s": must allow at least 1/)
})

t.test('metrics: off by default; on the main port, or on a port and address of their own', async t => {
  t.same(loadConfig({}).metrics, { enabled: false, port: undefined, host: '127.0.0.1' })
  t.same(loadConfig({ METRICS: 'on' }).metrics, { enabled: true, port: undefined, host: '127.0.0.1' }, 'without METRICS_PORT, on the main port')
  t.same(loadConfig({ METRICS: 'on', METRICS_PORT: '9464', HOST: '0.0.0.0' }).metrics, { enabled: true, port: 9464, host: '0.0.0.0' }, 'bound to HOST by default')
  t.same(loadConfig({ METRICS: 'on', METRICS_PORT: '9464', HOST: '0.0.0.0', METRICS_HOST: '10.0.0.5' }).metrics, { enabled: true, port: 9464, host: '10.0.0.5' })
  t.equal(loadConfig({ METRICS: 'off' }).metrics.enabled, false)
  t.throws(() => loadConfig({ METRICS: 'yes' }), /METRICS="yes": .*\(on serves Prometheus metrics at \/metrics/)
  t.throws(() => loadConfig({ METRICS: 'on', METRICS_PORT: '70000' }), /METRICS_PORT="70000": Expected integer to be less or equal to 65535/)
  t.throws(() => loadConfig({ METRICS: 'on', METRICS_PORT: 'nine' }), /METRICS_PORT="nine"/)
  t.throws(() => loadConfig({ METRICS: 'on', METRICS_PORT: '9464.5' }), /METRICS_PORT="9464.5"/)
  t.throws(() => loadConfig({ METRICS: 'on', PORT: '8080', METRICS_PORT: '8080' }), /METRICS_PORT: must differ from PORT/)
  t.equal(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).metrics.enabled, false, 'a port alone turns nothing on (METRICS=on does; compose.yaml sets the port for all)')
})
