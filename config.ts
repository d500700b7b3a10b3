import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import type { DatabaseSettings } from './db/connect.js'

// Every setting the server reads, as environment variables. This is the only module
// that looks at process.env; everything else receives a Config.

const Duration = Type.String({ pattern: '^[0-9]+(s|m|h|d)?$', description: 'seconds, or a number with s, m, h or d' })
const Limit = Type.String({ pattern: '^[0-9]+/([0-9]+)?(s|m|h|d|second|minute|hour|day)$', description: 'MAX/WINDOW, e.g. 10/hour or 100/15m' })
const OnOff = Type.Union([Type.Literal('on'), Type.Literal('off')])

export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 5000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^(postgres(ql)?://.+|sqlite:.+)$', description: 'postgres://... or sqlite:<file> (sqlite::memory: for a throwaway database)' })),
  DATABASE_SCHEMA: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$', description: 'PostgreSQL schema to use instead of public' })),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://.+$' })),
  REDIS_PREFIX: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$', default: 'cryptachat:', description: 'prefix of this service\'s keys and channels in Redis: the same on all its instances, different for another service on the same Redis' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 1 })),
  TOKEN_TTL: Type.Optional(Duration),
  TRUST_PROXY: Type.String({ default: 'false', pattern: '^(true|false|[0-9]+|[0-9A-Fa-f.:/]+(, *[0-9A-Fa-f.:/]+)*)$', description: 'false, true, a hop count, or comma-separated addresses/CIDRs' }),
  LOG_LEVEL: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], { default: 'info' }),
  LOG_CLIENT_IP: Type.Union([Type.Literal('off'), Type.Literal('on'), Type.Literal('hashed')], { default: 'off', description: 'off, on, or hashed (a hash of the address that changes each UTC day)' }),
  PASSWORD_HASH_CONCURRENCY: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: 'password hashes computed at once; default: CPU cores less one, at least 1' })),
  BODY_LIMIT: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 256 * 1024 }),
  MAX_KEY_LENGTH: Type.Integer({ minimum: 16, maximum: 1024 * 1024, default: 8 * 1024 }),
  MAX_BLOB_LENGTH: Type.Integer({ minimum: 16, maximum: 16 * 1024 * 1024, default: 64 * 1024 }),
  MAX_ENVELOPE_BYTES: Type.Integer({ minimum: 256, maximum: 16 * 1024 * 1024, default: 96 * 1024, description: 'largest envelope content of PUT /v1/messages, in decoded bytes' }),
  MAX_DEVICES: Type.Integer({ minimum: 1, maximum: 127, default: 6, description: 'devices per account, device 1 included' }),
  RATE_LIMIT: Type.Optional(OnOff),
  // Each default is set from what an active, honest user does (README, configuration; docs/security.md, "Why these defaults")
  RATE_LIMIT_REGISTER: Type.String({ ...Limit, default: '30/hour' }),
  RATE_LIMIT_LOGIN: Type.String({ ...Limit, default: '100/hour' }),
  RATE_LIMIT_REQUEST_CHAT: Type.String({ ...Limit, default: '60/hour' }),
  RATE_LIMIT_ACCEPT_CHAT: Type.String({ ...Limit, default: '60/hour' }),
  RATE_LIMIT_SEND_MESSAGE: Type.String({ ...Limit, default: '10000/hour' }),
  RATE_LIMIT_SEND_MESSAGE_SENDER: Type.String({ ...Limit, default: '1200/hour', description: 'per sending account, whatever its IPs' }),
  RATE_LIMIT_SEND_MESSAGE_PAIR: Type.String({ ...Limit, default: '600/hour', description: 'per sender to one recipient' }),
  RATE_LIMIT_LOGIN_FAILURES: Type.String({ ...Limit, default: '10/15m', description: 'failed logins per account and address' }),
  RATE_LIMIT_LOGIN_FAILURES_ACCOUNT: Type.String({ ...Limit, default: '100/15m', description: 'failed logins per account, whatever the addresses, past which each address gets one failure per window' }),
  RATE_LIMIT_SESSION_PASSWORD_FAILURES: Type.String({ ...Limit, default: '5/15m', description: 'wrong passwords per token on change_password and delete_account' }),
  RATE_LIMIT_UPLOAD_KEY: Type.String({ ...Limit, default: '10/day', description: 'key changes (uploads of a different key) per account' }),
  RATE_LIMIT_LOOKUPS: Type.String({ ...Limit, default: '60/hour', description: 'different usernames that are not your contacts looked up with get_key or get_messages, per account' }),
  RATE_LIMIT_ADMIN_FAILURES: Type.String({ ...Limit, default: '10/hour', description: 'wrong admin tokens per address' }),
  RATE_LIMIT_PREKEYS: Type.String({ ...Limit, default: '6/10m', description: 'prekey bundles one account fetches of one device: a bucket of MAX, one fetch back every WINDOW' }),
  RATE_LIMIT_CONNECTIONS_PER_USER: Type.Integer({ minimum: 1, maximum: 100_000, default: 20, description: 'WebSockets and waiting long-polls one account holds at once (per instance)' }),
  RATE_LIMIT_CONNECTIONS_PER_ADDRESS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 300, description: 'WebSockets and waiting long-polls one address holds at once (per instance)' }),
  CORS_ORIGINS: Type.Optional(Type.String({ pattern: '^(\\*|https?://[^\\s,/]+(, *https?://[^\\s,/]+)*)$', description: '* or comma-separated origins like https://chat.example.org' })),
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 1, description: 'turns on the web console at /admin; at least 32 random characters' })),
  MESSAGE_RETENTION_DAYS: Type.Optional(Type.Integer({ minimum: 1, maximum: 36500, description: 'whole days; unset keeps messages forever' })),
  RETENTION_SWEEP_INTERVAL: Type.String({ ...Duration, default: '1h' }),
  WS_PING_INTERVAL: Type.String({ ...Duration, default: '30s' }),
  WS_BUFFER_LIMIT: Type.Integer({ minimum: 16 * 1024, maximum: 256 * 1024 * 1024, default: 1024 * 1024, description: 'bytes' }),
  WS_DRAIN_TIMEOUT: Type.String({ ...Duration, default: '30s' }),
  REQUEST_TIMEOUT: Type.String({ ...Duration, default: '30s', description: 'time a client has to send a whole request (headers and body)' }),
  HEADERS_TIMEOUT: Type.String({ ...Duration, default: '10s', description: 'time a client has to send the request headers; at most REQUEST_TIMEOUT' }),
  KEEP_ALIVE_TIMEOUT: Type.String({ ...Duration, default: '72s', description: 'how long an idle keep-alive connection stays open between requests' }),
  METRICS: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'off', description: 'on serves Prometheus metrics at /metrics (docs/metrics.md)' }),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'a port of its own for /metrics (then not on PORT); unset: /metrics is on PORT, public; unused unless METRICS=on' })),
  METRICS_HOST: Type.Optional(Type.String({ minLength: 1, description: 'address the METRICS_PORT listener binds to; default: HOST' }))
})
export type Env = Static<typeof EnvSchema>

export interface RateLimitSetting { max: number, timeWindow: number }

export interface Config {
  env: Env['NODE_ENV']
  port: number
  host: string
  dataDir: string
  database: DatabaseSettings
  redisUrl: string | undefined
  redisPrefix: string
  jwtSecret: string | undefined
  tokenTtlSeconds: number
  trustProxy: boolean | number | string
  logLevel: Env['LOG_LEVEL']
  /** Whether log lines carry the client's address: no, as it is, or hashed under a daily salt. */
  logClientIp: Env['LOG_CLIENT_IP']
  /** Password hashes (Argon2id) computed at once; the others wait their turn. */
  passwordHashConcurrency: number
  bodyLimit: number
  maxKeyLength: number
  maxDevices: number
  maxEnvelopeBytes: number
  maxBlobLength: number
  rateLimit: {
    enabled: boolean
    register: RateLimitSetting
    login: RateLimitSetting
    requestChat: RateLimitSetting
    acceptChat: RateLimitSetting
    sendMessage: RateLimitSetting
    /** per account rather than per IP */
    sendMessageSender: RateLimitSetting
    sendMessagePair: RateLimitSetting
    /** failed logins per account and address */
    loginFailures: RateLimitSetting
    /** failed logins per account past which each address gets one failure per window */
    loginFailuresAccount: RateLimitSetting
    /** wrong passwords per token on change_password and delete_account (never the login's budget) */
    sessionPasswordFailures: RateLimitSetting
    /** key changes per account */
    uploadKey: RateLimitSetting
    /** distinct non-contact usernames looked up (get_key, get_messages) per account */
    lookups: RateLimitSetting
    /** wrong admin tokens per address */
    adminFailures: RateLimitSetting
    /** prekey bundles per (requesting account, target device): a bucket of `max`, one back every `timeWindow` (a leaky bucket, not a window) */
    prekeys: RateLimitSetting
    /** WebSockets and waiting long-polls held at once, counted by each instance */
    connections: { perUser: number, perAddress: number }
  }
  /** Origins allowed to call the API from a browser: none by default, '*' for any. */
  corsOrigins: string[]
  /** The web console's credential; the console is off when undefined. */
  adminToken: string | undefined
  /** Messages and events older than this many days are purged; undefined keeps them forever. */
  messageRetentionDays: number | undefined
  retentionSweepIntervalSeconds: number
  webSocket: {
    pingIntervalSeconds: number
    /** Bytes a socket may have queued before the server waits for the peer to read. */
    bufferLimit: number
    /** How long a peer may take to drain a full buffer before it is dropped. */
    drainTimeoutSeconds: number
  }
  /** Bounds on receiving a request (not on answering it: long-polls and WebSockets are not cut). */
  timeouts: {
    requestSeconds: number
    headersSeconds: number
    keepAliveSeconds: number
  }
  /** Prometheus metrics: served at /metrics on the main port, or on a listener of their own (`port`). */
  metrics: {
    enabled: boolean
    /** The metrics listener's port; undefined serves /metrics on the main port, to anyone who reaches it. */
    port: number | undefined
    host: string
  }
}

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
  }
}

const UNIT_SECONDS: Record<string, number> = { s: 1, second: 1, m: 60, minute: 60, h: 3600, hour: 3600, d: 86400, day: 86400 }

export function parseDuration (text: string): number {
  const match = /^([0-9]+)([a-z]*)$/.exec(text)
  if (match === null) throw new Error(`not a duration: ${text}`)
  return Number(match[1]) * (UNIT_SECONDS[match[2] || 's'] ?? 1)
}

function parseLimit (text: string): RateLimitSetting {
  const [, max = '0', count = '1', unit = 's'] = /^([0-9]+)\/([0-9]+)?([a-z]+)$/.exec(text) ?? []
  return { max: Number(max), timeWindow: Number(count) * (UNIT_SECONDS[unit] ?? 1) * 1000 }
}

function parseTrustProxy (text: string): boolean | number | string {
  if (text === 'true') return true
  if (text === 'false' || text === '') return false
  if (/^[0-9]+$/.test(text)) return Number(text)
  return text
}

/** Reads and validates the environment; throws ConfigError naming every bad value. */
export function loadConfig (source: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key]
    if (value === undefined || value === '') continue
    // Value.Convert would turn "1.5" into 1: an integer setting must be written as one
    const integer = (EnvSchema.properties as Record<string, { type?: string }>)[key]?.type === 'integer'
    raw[key] = integer && !/^-?[0-9]+$/.test(value.trim()) ? `${value} (not an integer)` : value
  }
  const env = Value.Convert(EnvSchema, Value.Default(EnvSchema, raw)) as Env
  const problems = [...Value.Errors(EnvSchema, env)].map(error => {
    const name = error.path.slice(1)
    const hint = (error.schema as { description?: string }).description
    return `${name}=${JSON.stringify(source[name])}: ${error.message}${hint ? ` (${hint})` : ''}`
  })
  if (problems.length > 0) throw new ConfigError(problems)
  const tokenTtlSeconds = env.TOKEN_TTL === undefined ? 86400 : parseDuration(env.TOKEN_TTL)
  if (tokenTtlSeconds < 60) problems.push('TOKEN_TTL: must be at least 60 seconds')
  for (const name of ['RETENTION_SWEEP_INTERVAL', 'WS_PING_INTERVAL', 'WS_DRAIN_TIMEOUT', 'REQUEST_TIMEOUT', 'HEADERS_TIMEOUT', 'KEEP_ALIVE_TIMEOUT'] as const) {
    if (parseDuration(env[name]) < 1) problems.push(`${name}: must be at least 1 second`)
  }
  // Node refuses a headers timeout longer than the request timeout it is part of
  if (parseDuration(env.HEADERS_TIMEOUT) > parseDuration(env.REQUEST_TIMEOUT)) problems.push('HEADERS_TIMEOUT: must not exceed REQUEST_TIMEOUT')
  const proxies = /^(true|false|[0-9]+)$/.test(env.TRUST_PROXY) ? [] : env.TRUST_PROXY.split(',').map(item => item.trim())
  for (const entry of proxies) {
    if (!isProxyAddress(entry)) problems.push(`TRUST_PROXY: ${JSON.stringify(entry)} is not an IP address or a CIDR`)
  }
  if (env.NODE_ENV === 'production' && env.JWT_SECRET === undefined) problems.push('JWT_SECRET: required when NODE_ENV=production')
  // a weak secret set on purpose is refused in development too (a development server is often
  // reachable, and its tokens are as good as production ones); unset, a random one is generated
  if (env.JWT_SECRET !== undefined && env.NODE_ENV !== 'test' && !isStrongSecret(env.JWT_SECRET)) {
    problems.push('JWT_SECRET: too weak or a placeholder; use at least 32 random characters (e.g. `openssl rand -base64 48`), or leave it unset outside production to have one generated')
  }
  for (const name of ['RATE_LIMIT_REGISTER', 'RATE_LIMIT_LOGIN', 'RATE_LIMIT_REQUEST_CHAT', 'RATE_LIMIT_ACCEPT_CHAT', 'RATE_LIMIT_SEND_MESSAGE', 'RATE_LIMIT_SEND_MESSAGE_SENDER', 'RATE_LIMIT_SEND_MESSAGE_PAIR',
    'RATE_LIMIT_LOGIN_FAILURES', 'RATE_LIMIT_LOGIN_FAILURES_ACCOUNT', 'RATE_LIMIT_SESSION_PASSWORD_FAILURES', 'RATE_LIMIT_UPLOAD_KEY', 'RATE_LIMIT_LOOKUPS', 'RATE_LIMIT_ADMIN_FAILURES', 'RATE_LIMIT_PREKEYS'] as const) {
    const { max, timeWindow } = parseLimit(env[name])
    if (max < 1 || timeWindow < 1000) problems.push(`${name}=${JSON.stringify(env[name])}: must allow at least 1 in a window of at least 1 second (RATE_LIMIT=off lifts every limit)`)
  }
  if (env.ADMIN_TOKEN !== undefined && !isStrongSecret(env.ADMIN_TOKEN)) {
    problems.push('ADMIN_TOKEN: too weak; use at least 32 random characters (e.g. `openssl rand -base64 32`)')
  }
  if (env.METRICS === 'on' && env.METRICS_PORT !== 0 && env.METRICS_PORT === env.PORT) problems.push('METRICS_PORT: must differ from PORT (unset it to serve /metrics on PORT)')
  if (problems.length > 0) throw new ConfigError(problems)

  const url = env.DATABASE_URL
  return {
    env: env.NODE_ENV,
    port: env.PORT,
    host: env.HOST,
    dataDir: env.DATA_DIR,
    database: url === undefined
      ? { kind: 'sqlite', file: `${env.DATA_DIR}/cryptachat.db` }
      : url.startsWith('sqlite:') ? { kind: 'sqlite', file: url.slice('sqlite:'.length) } : { kind: 'postgres', url, schema: env.DATABASE_SCHEMA },
    redisUrl: env.REDIS_URL,
    redisPrefix: env.REDIS_PREFIX,
    jwtSecret: env.JWT_SECRET,
    tokenTtlSeconds,
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    logLevel: env.LOG_LEVEL,
    logClientIp: env.LOG_CLIENT_IP,
    // one core is left to the event loop: hashes saturating every core stall every request
    passwordHashConcurrency: env.PASSWORD_HASH_CONCURRENCY ?? Math.max(1, availableParallelism() - 1),
    bodyLimit: env.BODY_LIMIT,
    maxKeyLength: env.MAX_KEY_LENGTH,
    maxDevices: env.MAX_DEVICES,
    maxEnvelopeBytes: env.MAX_ENVELOPE_BYTES,
    maxBlobLength: env.MAX_BLOB_LENGTH,
    rateLimit: {
      enabled: env.RATE_LIMIT !== 'off',
      register: parseLimit(env.RATE_LIMIT_REGISTER),
      login: parseLimit(env.RATE_LIMIT_LOGIN),
      requestChat: parseLimit(env.RATE_LIMIT_REQUEST_CHAT),
      acceptChat: parseLimit(env.RATE_LIMIT_ACCEPT_CHAT),
      sendMessage: parseLimit(env.RATE_LIMIT_SEND_MESSAGE),
      sendMessageSender: parseLimit(env.RATE_LIMIT_SEND_MESSAGE_SENDER),
      sendMessagePair: parseLimit(env.RATE_LIMIT_SEND_MESSAGE_PAIR),
      loginFailures: parseLimit(env.RATE_LIMIT_LOGIN_FAILURES),
      loginFailuresAccount: parseLimit(env.RATE_LIMIT_LOGIN_FAILURES_ACCOUNT),
      sessionPasswordFailures: parseLimit(env.RATE_LIMIT_SESSION_PASSWORD_FAILURES),
      uploadKey: parseLimit(env.RATE_LIMIT_UPLOAD_KEY),
      lookups: parseLimit(env.RATE_LIMIT_LOOKUPS),
      adminFailures: parseLimit(env.RATE_LIMIT_ADMIN_FAILURES),
      prekeys: parseLimit(env.RATE_LIMIT_PREKEYS),
      connections: { perUser: env.RATE_LIMIT_CONNECTIONS_PER_USER, perAddress: env.RATE_LIMIT_CONNECTIONS_PER_ADDRESS }
    },
    corsOrigins: env.CORS_ORIGINS === undefined ? [] : env.CORS_ORIGINS.split(',').map(origin => origin.trim()),
    adminToken: env.ADMIN_TOKEN,
    messageRetentionDays: env.MESSAGE_RETENTION_DAYS,
    retentionSweepIntervalSeconds: parseDuration(env.RETENTION_SWEEP_INTERVAL),
    webSocket: {
      pingIntervalSeconds: parseDuration(env.WS_PING_INTERVAL),
      bufferLimit: env.WS_BUFFER_LIMIT,
      drainTimeoutSeconds: parseDuration(env.WS_DRAIN_TIMEOUT)
    },
    timeouts: {
      requestSeconds: parseDuration(env.REQUEST_TIMEOUT),
      headersSeconds: parseDuration(env.HEADERS_TIMEOUT),
      keepAliveSeconds: parseDuration(env.KEEP_ALIVE_TIMEOUT)
    },
    metrics: { enabled: env.METRICS === 'on', port: env.METRICS_PORT, host: env.METRICS_HOST ?? env.HOST }
  }
}

function isProxyAddress (entry: string): boolean {
  const [address = '', prefix, extra] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || extra !== undefined) return false
  if (prefix === undefined) return true
  return /^[0-9]+$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)
}

/** Words of the placeholders that sample configurations ship ("your-super-secret-key-change-me"). */
const PLACEHOLDER = /changeme|changethis|replaceme|yoursecret|supersecret|mysecret|placeholder|example/

function isStrongSecret (secret: string): boolean {
  return secret.length >= 32 && new Set(secret).size >= 10 && !PLACEHOLDER.test(secret.toLowerCase().replace(/[^a-z0-9]/g, ''))
}
