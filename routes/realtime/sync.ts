import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { afterSession } from '../../plugins/app/auth.js'
import { closes, type HubSignal } from '../../plugins/app/hub.js'
import { bearer, errorReplies } from '../schemas.js'
import { Cursor, Event, type WireEvent } from './events.js'
import { formatCursor, pageSince, readPage, startingSeq } from './feed.js'
import type { ConnectionCaps } from './connection-caps.js'
import { PROTOCOL } from './protocol.js'

export const SyncQuery = Type.Object({
  since: Type.Optional(Type.String({
    maxLength: 40,
    pattern: '^([0-9]{1,15}-[0-9]{1,15})?$',
    description: 'the `next` cursor of your previous sync (or the `cursor` of the last event you processed); omit to start from the oldest kept event'
  })),
  timeout: Type.Integer({ minimum: 0, maximum: 30, default: 0, description: 'seconds to wait for an event when there is none yet (long-poll); 0 answers at once' }),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
})

export const SyncReply = Type.Object({
  events: Type.Array(Event),
  next: Type.String({ ...Cursor, description: 'pass as `since` next time' }),
  has_more: Type.Boolean({ description: 'more events are waiting: sync again at once with `since=next`' })
})

type Wake = HubSignal | { kind: 'timeout' } | { kind: 'closing' }
const RANK: Record<Wake['kind'], number> = { timeout: 0, news: 1, disconnect: 2, closing: 3 }

/** One long-poll's wait: a signal that arrives while the request is reading is kept for the next wait. */
class Waiter {
  #pending: Wake | undefined
  #resolve: ((wake: Wake) => void) | undefined

  wake (wake: Wake): void {
    if (this.#resolve === undefined) {
      if (this.#pending === undefined || RANK[wake.kind] > RANK[this.#pending.kind]) this.#pending = wake
      return
    }
    this.#resolve(wake)
    this.#resolve = undefined
  }

  async wait (ms: number): Promise<Wake> {
    const pending = this.#pending
    this.#pending = undefined
    if (pending !== undefined) return pending
    if (ms <= 0) return { kind: 'timeout' }
    let timer: NodeJS.Timeout | undefined
    const wake = await new Promise<Wake>(resolve => {
      this.#resolve = resolve
      timer = setTimeout(() => this.wake({ kind: 'timeout' }), ms)
    })
    clearTimeout(timer)
    return wake
  }
}

const sync: FastifyPluginAsyncTypebox<{ caps: ConnectionCaps }> = async (fastify, { caps }) => {
  const waiting = new Set<Waiter>()
  fastify.metrics.watchLongPolls(() => waiting.size)
  // a server shutting down answers its long-polls at once instead of holding them open
  fastify.addHook('preClose', async () => { for (const waiter of waiting) waiter.wake({ kind: 'closing' }) })

  fastify.get('/sync', {
    schema: {
      summary: 'Everything that happened to you since a cursor, across all conversations (optionally long-polling)',
      description: PROTOCOL,
      tags: ['realtime'],
      security: bearer,
      querystring: SyncQuery,
      response: { 200: SyncReply, ...errorReplies(400, 401, 410, 429) }
    },
    onRequest: fastify.authenticateDeferred
  }, async (request, reply) => {
    const { user } = request
    const reader = { user, deviceKey: request.device.key }
    const { since, timeout, limit } = request.query
    const answer = (page: { events: WireEvent[], lastSeq: number, hasMore: boolean }): typeof SyncReply.static =>
      ({ events: page.events, next: formatCursor(reader.deviceKey, page.lastSeq), has_more: page.hasMore })
    if (timeout === 0) return answer(await afterSession(request, pageSince(fastify.db, reader, since, limit)))
    let after = await afterSession(request, startingSeq(fastify.db, reader.deviceKey, since))

    // a long-poll holds a connection: within the caps per account and address, or a 429
    const release = caps.hold(request, reply)
    const waiter = new Waiter()
    const gone = (): void => waiter.wake({ kind: 'closing' })
    // subscribe before reading: an event committed between the read and the wait still wakes us
    const unsubscribe = await fastify.hub.subscribe(user.id, signal => waiter.wake(signal)).catch((error: unknown) => { release(); throw error })
    waiting.add(waiter)
    reply.raw.once('close', gone)
    try {
      const deadline = Date.now() + timeout * 1000
      for (;;) {
        const page = await readPage(fastify.db, reader, after, limit)
        if (page.events.length > 0 || page.hasMore) return answer(page)
        after = page.lastSeq
        const wake = await waiter.wait(deadline - Date.now())
        // at the timeout, one last read: a hint between instances can be lost, the database cannot
        if (wake.kind === 'timeout') return answer(await readPage(fastify.db, reader, after, limit))
        if (wake.kind === 'closing') return answer({ events: [], lastSeq: after, hasMore: false })
        // the session may have ended (logout, password change, deletion): answer with its 401
        if (wake.kind === 'disconnect' && closes(wake, request.token.jti, reader.deviceKey)) await fastify.authenticate(request)
      }
    } finally {
      release()
      unsubscribe()
      waiting.delete(waiter)
      reply.raw.off('close', gone)
    }
  })
}

export default sync
