import fp from 'fastify-plugin'
import { purgeBefore, type PurgeOutcome } from '../../db/retention.js'

// With MESSAGE_RETENTION_DAYS set, a background sweep deletes older messages and events
// at start and then every RETENTION_SWEEP_INTERVAL. Every instance may sweep: each
// expired message is deleted, and reported to its sender, by exactly one of them.

const DAY_MS = 86_400_000
const MAX_TIMER_MS = 2 ** 31 - 1

export interface Retention {
  /** Runs one sweep as if it were `now`; undefined when retention is off. */
  sweep: (now?: number) => Promise<PurgeOutcome | undefined>
}

export default fp(async function retentionPlugin (fastify) {
  const days = fastify.config.messageRetentionDays
  let running: Promise<unknown> = Promise.resolve()

  async function sweep (now = Date.now()): Promise<PurgeOutcome | undefined> {
    if (days === undefined) return undefined
    const outcome = await purgeBefore(fastify.db, now - days * DAY_MS, 500, now)
    await fastify.hub.publish(outcome.notify)
    if (outcome.messages + outcome.envelopes + outcome.events > 0) fastify.log.info({ messages: outcome.messages, envelopes: outcome.envelopes, events: outcome.events }, 'retention sweep')
    return outcome
  }
  fastify.decorate('retention', { sweep } satisfies Retention)

  if (days === undefined) return
  const background = (): void => {
    running = sweep().catch(error => fastify.log.error({ err: error }, 'retention sweep failed'))
  }
  const interval = Math.min(fastify.config.retentionSweepIntervalSeconds * 1000, MAX_TIMER_MS)
  let timer: NodeJS.Timeout | undefined
  fastify.addHook('onReady', async () => {
    background()
    timer = setInterval(background, interval)
    timer.unref()
  })
  fastify.addHook('preClose', async () => {
    clearInterval(timer)
    await running
  })
}, { name: 'retention', dependencies: ['config', 'db', 'hub'] })

declare module 'fastify' {
  interface FastifyInstance {
    retention: Retention
  }
}
