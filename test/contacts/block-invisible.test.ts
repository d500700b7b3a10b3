import fc from 'fast-check'
import type { FastifyInstance, InjectOptions } from 'fastify'
import t from 'tap'
import { createUser } from '../../db/users.js'
import { build, call, primaryDeviceOf } from '../helper.js'

// A block cannot be detected: for random sequences of actions among three users, what the
// observer `o` sees (the answer to each of its own requests, its lists after every step, and
// at the end its whole event stream, cursors included, its conversations and blocks) is the
// same as in a second world where the same sequence runs with every block of `o` replaced by
// the ordinary action it looks like (remove_contact, decline_chat, cancel_request, or nothing),
// each unblock of `o` by nothing, and whatever the blocker does to `o` while the block holds
// left out (in the first world all of it is refused and changes nothing). `o` may block too,
// and the others each other: those run alike in both worlds. Timestamps are left out of the
// comparison (the two worlds run at different instants); everything else must match.
// BLOCK_RUNS and BLOCK_SEED make a longer run.

const SEED = process.env.BLOCK_SEED === 'random' ? Date.now() % 2 ** 31 : Number(process.env.BLOCK_SEED ?? 20261130)
const RUNS = Number(process.env.BLOCK_RUNS ?? 25)

const VERBS = ['request', 'accept', 'decline', 'cancel', 'remove', 'send', 'upload_key', 'block', 'unblock'] as const
type Verb = typeof VERBS[number]
/** `actor` does `verb` to `target` (indexes into the run's users; 0 is the observer). */
interface Step { actor: number, verb: Verb, target: number }
type Imitation = 'remove' | 'decline' | 'cancel' | 'nothing'

// Mostly a step between o and one of the others, either way (uniform steps among all three
// seldom make a contact or a request for a block to end), sometimes one between the others.
// The others block and unblock o often, so that blocks come at every stage of a relation.
const FROM_OTHER: Verb[] = ['block', 'block', 'unblock', 'unblock', 'request', 'request', 'accept', 'decline', 'cancel', 'remove', 'send', 'upload_key']
const FROM_OBSERVER: Verb[] = ['request', 'request', 'request', 'accept', 'accept', 'decline', 'cancel', 'remove', 'send', 'upload_key', 'block', 'unblock']
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ actor: fc.constantFrom(1, 2), verb: fc.constantFrom(...FROM_OTHER) }).map(({ actor, verb }) => ({ actor, verb, target: 0 })) },
  { weight: 3, arbitrary: fc.record({ target: fc.constantFrom(1, 2), verb: fc.constantFrom(...FROM_OBSERVER) }).map(({ target, verb }) => ({ actor: 0, verb, target })) },
  { weight: 1, arbitrary: fc.record({ actor: fc.constantFrom(1, 2), verb: fc.constantFrom(...VERBS) }).map(({ actor, verb }) => ({ actor, verb, target: 3 - actor })) }
)

function requestFor (verb: Verb | Imitation, target: string, index: number): InjectOptions {
  const post = (url: string, payload: object): InjectOptions => ({ method: 'POST', url, payload })
  switch (verb) {
    case 'request': return post('/request_chat', { recipient_username: target })
    case 'accept': return post('/accept_chat', { requester_username: target })
    case 'decline': return post('/decline_chat', { requester_username: target })
    case 'cancel': return post('/cancel_request', { recipient_username: target })
    case 'remove': return post('/remove_contact', { username: target })
    case 'send': return post('/send_message', { recipient_username: target, sender_blob: `s${index}`, recipient_blob: `r${index}` })
    case 'upload_key': return post('/upload_key', { public_key: `key ${index}` })
    case 'block': return post('/block_user', { username: target })
    case 'unblock': return post('/unblock_user', { username: target })
    case 'nothing': throw new Error('nothing is not a request')
  }
}

/** The value with every `timestamp` left out: the rest must match to the letter. */
function timeless (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(timeless)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'timestamp').map(([key, v]) => [key, timeless(v)]))
}

class World {
  readonly tokens = new Map<string, string>()
  constructor (readonly app: FastifyInstance) {}

  /** Users made directly (no password hashing: the property is about contacts), each with a token. */
  async users (names: string[]): Promise<void> {
    for (const username of names) {
      const created = await createUser(this.app.db, username, 'not a password hash')
      if (created === undefined) throw new Error(`${username} exists`)
      this.tokens.set(username, this.app.issueToken({ ...created, token_version: 0 }, await primaryDeviceOf(this.app.db, created.id)).token)
    }
  }

  async do (actor: string, request: InjectOptions): Promise<unknown> {
    const res = await call(this.app, this.tokens.get(actor) ?? '', request)
    if (res.statusCode >= 500) throw new Error(`${res.statusCode} ${res.body}`)
    return [res.statusCode, timeless(res.json())]
  }

  /** The lists that change step by step. */
  async lists (observer: string): Promise<unknown> {
    return await Promise.all(['/get_chat_requests', '/get_contacts'].map(async url => await this.do(observer, { method: 'GET', url })))
  }

  /** Everything else the observer can read: its whole event stream, its conversations, its blocks. */
  async everything (observer: string, others: string[]): Promise<unknown> {
    const events: unknown[] = []
    let since: string | undefined
    for (;;) {
      const res = await call(this.app, this.tokens.get(observer) ?? '', { method: 'GET', url: '/sync', query: since === undefined ? {} : { since } })
      const page = res.json()
      events.push(...page.events)
      if (!page.has_more) break
      since = page.next
    }
    const reads = ['/get_blocked', ...others.map(name => `/get_messages?username=${name}`)]
    return { events: timeless(events), reads: await Promise.all(reads.map(async url => await this.do(observer, { method: 'GET', url }))) }
  }

  /** Between `a` and `b` (ids by name): 'accepted', the requester's name of a pending request, or undefined. */
  async relation (a: string, b: string): Promise<string | undefined> {
    const row = await this.app.db.selectFrom('chat_requests')
      .innerJoin('users as requester', 'requester.id', 'chat_requests.requester_id')
      .innerJoin('users as requested', 'requested.id', 'chat_requests.requested_id')
      .select(['chat_requests.status', 'requester.username'])
      .where(eb => eb.or([
        eb.and([eb('requester.username', '=', a), eb('requested.username', '=', b)]),
        eb.and([eb('requester.username', '=', b), eb('requested.username', '=', a)])
      ]))
      .executeTakeFirst()
    return row === undefined ? undefined : row.status === 'accepted' ? 'accepted' : row.username
  }
}

t.test('what a blocked user observes, a sequence without blocks produces too', async t => {
  // two apps: each world its own database (on PostgreSQL, its own schema)
  const blocking = new World(await build(t))
  const ordinary = new World(await build(t))
  let run = 0
  const imitated: Record<Imitation | 'again' | 'revealed', number> = { remove: 0, decline: 0, cancel: 0, nothing: 0, again: 0, revealed: 0 }

  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 20, size: 'max' }), async steps => {
    run++
    const names = ['o', 'p', 'q'].map(name => `r${run}${name}`)
    const [observer = ''] = names
    await blocking.users(names)
    await ordinary.users(names)
    // who blocks o in the first world
    const blockers = new Set<string>()
    for (const [index, { actor: a, verb, target: b }] of steps.entries()) {
      const actor = names[a] ?? ''
      const target = names[b] ?? ''
      let instead: Verb | Imitation = verb
      if (target === observer) {
        if (verb === 'block') {
          if (blockers.has(actor)) {
            instead = 'nothing'
            imitated.again++
          } else {
            const relation = await blocking.relation(actor, observer)
            instead = relation === undefined ? 'nothing' : relation === 'accepted' ? 'remove' : relation === observer ? 'decline' : 'cancel'
            blockers.add(actor)
            imitated[instead as Imitation]++
          }
        } else if (verb === 'unblock') {
          if (blockers.delete(actor) && await blocking.relation(actor, observer) === observer) imitated.revealed++
          instead = 'nothing'
        } else if (blockers.has(actor)) instead = 'nothing'
      }
      const first = await blocking.do(actor, requestFor(verb, target, index))
      const second = instead === 'nothing' ? undefined : await ordinary.do(actor, requestFor(instead, target, index))
      if (actor === observer && JSON.stringify(first) !== JSON.stringify(second)) {
        throw new Error(`step ${index} (${verb} ${target}): o was answered ${JSON.stringify(first)} with blocks, ${JSON.stringify(second)} without`)
      }
      const [seen, seenWithout] = [await blocking.lists(observer), await ordinary.lists(observer)]
      if (JSON.stringify(seen) !== JSON.stringify(seenWithout)) {
        throw new Error(`after step ${index} (${actor} ${verb} ${target}): o's lists ${JSON.stringify(seen)} with blocks, ${JSON.stringify(seenWithout)} without`)
      }
    }
    const others = names.slice(1)
    const [all, allWithout] = [await blocking.everything(observer, others), await ordinary.everything(observer, others)]
    if (JSON.stringify(all) !== JSON.stringify(allWithout)) {
      throw new Error(`at the end, o's events, conversations and blocks: ${JSON.stringify(all)} with blocks, ${JSON.stringify(allWithout)} without`)
    }
  }), { seed: SEED, numRuns: RUNS })
  t.pass(`${RUNS} sequences: o's answers, lists, events, conversations and blocks the same in both worlds`)

  t.comment(`seed=${SEED} runs=${RUNS}; blocks of o imitated: ${JSON.stringify(imitated)}`)
  // the generator reaches every case, or the property says little
  for (const kind of ['remove', 'decline', 'cancel', 'nothing', 'again', 'revealed'] as const) t.ok(imitated[kind] > 0, `some block looked like ${kind}`)
})
