import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { hash } from '@node-rs/argon2'
import { hashPassword, importRefusal, isWerkzeugHash, isWrappedHash, needsRehash, turns, verifyPassword, verifyWerkzeugHash, werkzeugMethod, wrapWerkzeugHash } from '../passwords.js'
import { werkzeugPbkdf2, werkzeugScrypt } from './fixtures/original.js'

// Werkzeug 3's defaults, computed with Python's hashlib as werkzeug.security does
// (hashlib.pbkdf2_hmac / hashlib.scrypt with the salt string's bytes, hex digest).
const PASSWORD = 'hunter2 original'
const PYTHON_PBKDF2 = 'pbkdf2:sha256:600000$Xk3pQ9zLmN2rT5vW$10c1efa984564843b0b7762b3c664830366558d5b7ae3599d162a4cd9fbb0c63'
const PYTHON_SCRYPT = 'scrypt:32768:8:1$Xk3pQ9zLmN2rT5vW$51f93752e76a2c4ff959341612a3f624bd4687e24ea09f5d69330c160cc26416c9877b3c0cc49d69b9c65be9e6c0a0b0928a2c5335663139b71588255f2a7ffb'

t.test('hashes made by Python with werkzeug\'s defaults verify (scrypt n=2^15 needs more than the default maxmem)', async t => {
  t.equal(await verifyWerkzeugHash(PYTHON_PBKDF2, PASSWORD), true)
  t.equal(await verifyWerkzeugHash(PYTHON_SCRYPT, PASSWORD), true)
  t.equal(await verifyWerkzeugHash(PYTHON_PBKDF2, 'hunter2 Original'), false)
  t.equal(await verifyWerkzeugHash(PYTHON_SCRYPT, PASSWORD + ' '), false)
})

t.test('other digests and parameters, and non-ASCII passwords', async t => {
  for (const stored of [werkzeugPbkdf2('pässwörd ✓', 'abc', 1000, 'sha1'), werkzeugPbkdf2('pässwörd ✓', 'abc', 2000, 'sha512'), werkzeugScrypt('pässwörd ✓', 'abc', 2048, 4, 2)]) {
    t.ok(isWerkzeugHash(stored), stored.split('$')[0] ?? '')
    t.equal(await verifyWerkzeugHash(stored, 'pässwörd ✓'), true)
    t.equal(await verifyWerkzeugHash(stored, 'passwörd ✓'), false)
  }
})

t.test('malformed, unsupported or unbounded hashes are refused, never thrown', async t => {
  const good = werkzeugPbkdf2('secret password', 'salt')
  const hex = good.split('$')[2]!
  for (const stored of [
    '', 'plain text', '$argon2id$v=19$m=19456,t=2,p=1$abc$def', 'sha256$salt$' + hex, 'md5:1000$salt$' + hex,
    'pbkdf2:sha256$salt$' + hex, // werkzeug always writes the iterations; without them the count is a guess
    'pbkdf2:sha256:0$salt$' + hex, 'pbkdf2:sha256:99999999$salt$' + hex, 'pbkdf2:md5:1000$salt$' + hex,
    'pbkdf2:sha256:1000$salt$' + hex.slice(2), 'pbkdf2:sha256:1000$salt$' + hex.toUpperCase(), 'pbkdf2:sha256:1000$$' + hex,
    'scrypt:1000:8:1$salt$' + hex + hex, 'scrypt:1048576:64:16$salt$' + hex + hex, 'scrypt:16384:8$salt$' + hex + hex,
    'scrypt:16384:8:1$salt$' + hex
  ]) {
    t.equal(isWerkzeugHash(stored), false, `not verifiable: ${stored.slice(0, 40)}`)
    t.equal(await verifyWerkzeugHash(stored, 'secret password'), false)
  }
  t.equal(await verifyWerkzeugHash(good, 'secret password'), true)
})

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

t.test('verifyPassword takes an Argon2id or a Werkzeug hash; only Argon2id needs no rehash', async t => {
  const argon = await hashPassword(PASSWORD)
  t.equal(await verifyPassword(argon, PASSWORD), true)
  t.equal(await verifyPassword(argon, PASSWORD + ' '), false)
  t.equal(await verifyPassword(PYTHON_PBKDF2, PASSWORD), true)
  t.equal(await verifyPassword(PYTHON_PBKDF2, 'hunter2 Original'), false)
  t.equal(await verifyPassword('not a hash at all', PASSWORD), false, 'a malformed hash is a mismatch, not an error')
  t.equal(needsRehash(argon), false)
  t.equal(needsRehash(PYTHON_SCRYPT), true)
})

t.test('a Werkzeug hash wrapped in Argon2id keeps method and salt, drops the digest, and verifies the old password', async t => {
  for (const [stored, method] of [[PYTHON_PBKDF2, 'pbkdf2:sha256:600000'], [PYTHON_SCRYPT, 'scrypt:32768:8:1']] as const) {
    const wrapped = await wrapWerkzeugHash(stored)
    t.equal(wrapped.slice(0, wrapped.indexOf('$argon2id$')), `$cc-wrapped$${method}$Xk3pQ9zLmN2rT5vW`)
    t.match(wrapped, /\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/)
    t.notOk(wrapped.includes(stored.split('$')[2]!), 'the Werkzeug digest is not in it')
    t.ok(isWrappedHash(wrapped))
    t.notOk(isWerkzeugHash(wrapped))
    t.equal(werkzeugMethod(wrapped), method)
    t.equal(await verifyPassword(wrapped, PASSWORD), true)
    t.equal(await verifyPassword(wrapped, 'hunter2 Original'), false)
    t.equal(needsRehash(wrapped), true, 'replaced by a native hash at the first login')
  }
  const wrapped = await wrapWerkzeugHash(werkzeugPbkdf2('pw', 'salt', 1000))
  t.equal(await verifyPassword(wrapped.replace('pbkdf2:sha256:1000', 'pbkdf2:sha256:1001'), 'pw'), false, 'the method is part of what is checked')
  t.equal(await verifyPassword(wrapped.replace('pbkdf2:sha256:1000', 'pbkdf2:sha256:2000000'), 'pw'), false, 'a wrapped hash beyond the bounds never verifies')
  await t.rejects(wrapWerkzeugHash('plain text'), /not a Werkzeug hash/)
})

t.test('Argon2 hashes verify only within the bounds; only native parameters need no rehash', async t => {
  const within = await hash('pw', { memoryCost: 8192, timeCost: 3, parallelism: 2 })
  t.equal(await verifyPassword(within, 'pw'), true)
  t.equal(needsRehash(within), true)
  t.equal(importRefusal(within), undefined)
  t.equal(needsRehash(await hashPassword('pw')), false)
  // rewritten by hand: computing these would take hundreds of MiB and seconds
  for (const params of ['m=262144,t=8,p=1', 'm=8192,t=5,p=2', 'm=8192,t=3,p=8']) {
    const beyond = within.replace('m=8192,t=3,p=2', params)
    const started = Date.now()
    t.equal(await verifyPassword(beyond, 'pw'), false, params)
    t.ok(Date.now() - started < 1000, 'refused without computing it')
    t.match(importRefusal(beyond), /^Argon2 parameters beyond the bounds/)
  }
})

t.test('importRefusal: what the import accepts, and a reason that never quotes the hash', async t => {
  const digest = 'ab'.repeat(32)
  t.equal(importRefusal(PYTHON_PBKDF2), undefined)
  t.equal(importRefusal(PYTHON_SCRYPT), undefined)
  const cases: Array<[unknown, RegExp]> = [
    ['hunter2', /^plaintext or an unknown hash format$/],
    ['', /^plaintext or an unknown hash format$/],
    [42, /^plaintext or an unknown hash format$/],
    [`{SSHA}${digest}`, /^plaintext or an unknown hash format$/],
    ['$2b$12$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui', /^plaintext or an unknown hash format$/],
    [`$cc-wrapped$pbkdf2:sha256:1000$s$argon2id$v=19$m=19456,t=2,p=1$${digest}`, /^plaintext or an unknown hash format$/],
    [`pbkdf2:sha256:1000001$salt$${digest}`, /^pbkdf2 iterations beyond the bound \(1000000\)$/],
    [`scrypt:65536:8:2$salt$${digest}${digest}`, /^scrypt parameters beyond the bound/],
    [`scrypt:1048576:8:1$salt$${digest}${digest}`, /^scrypt parameters beyond the bound/]
  ]
  for (const [stored, reason] of cases) {
    const refusal = importRefusal(stored)
    t.match(refusal, reason, String(stored).slice(0, 30))
    t.notOk(typeof stored === 'string' && stored !== '' && refusal?.includes(stored))
  }
  t.equal(importRefusal(`pbkdf2:sha256:1000000$salt$${digest}`), undefined, 'the bounds themselves are accepted')
  t.equal(importRefusal(`scrypt:65536:8:1$salt$${digest}${digest}`), undefined)
})
