import { Worker } from 'node:worker_threads'
import type { Database as SQLiteDatabase } from 'better-sqlite3'

export interface Checkpointer {
  /**
   * Asks for the WAL to be checkpointed and truncated to zero bytes (after an erasure: the
   * log keeps old images of the pages it changed). Resolves true once done, or false after
   * `waitMs` while a reader still holds the log: the worker keeps trying (backing off up to
   * 10 s), and a stop does it before the connection closes.
   */
  truncate: (waitMs?: number) => Promise<boolean>
  stop: () => Promise<void>
}

// The worker is compiled beside this module; under a TypeScript loader (tests) it is the .ts.
const workerUrl = new URL(`./checkpoint-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

/**
 * Moves the WAL checkpoints of `sqlite` (a WAL database file) off the event loop: the
 * connection stops checkpointing on commit and a worker thread checkpoints every
 * `intervalMs` instead. Should the worker die, the connection checkpoints itself again.
 * A committed transaction is in the WAL either way: this changes when the log is copied
 * into the database file, not what survives a crash.
 */
export function startCheckpointer (sqlite: SQLiteDatabase, file: string, intervalMs = 200): Checkpointer {
  const worker = new Worker(workerUrl, { workerData: { file, intervalMs } })
  worker.unref()
  sqlite.pragma('wal_autocheckpoint = 0')
  let stopping = false
  let alive = true
  const exited = new Promise<void>(resolve => {
    worker.once('exit', () => {
      alive = false
      if (!stopping && sqlite.open) sqlite.pragma('wal_autocheckpoint = 1000')
      resolve()
    })
  })
  worker.on('error', () => {}) // the exit handler above falls back
  // Truncations asked for and done, numbered: one done after a request covers every earlier one.
  let asked = 0
  let done = 0
  const waiting = new Set<{ id: number, resolve: (ok: boolean) => void }>()
  const settle = (): void => {
    for (const waiter of waiting) if (waiter.id <= done) { waiting.delete(waiter); waiter.resolve(true) }
  }
  // On the connection itself, while the worker is not running (still starting, or gone),
  // and at a stop with a request pending. `briefly`: a reader in another process makes it
  // give up after 50 ms rather than stall the event loop for the whole busy timeout.
  const truncateHere = (briefly: boolean): void => {
    const previous = sqlite.pragma('busy_timeout', { simple: true }) as number
    if (briefly) sqlite.pragma('busy_timeout = 50')
    try {
      const [row] = sqlite.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>
      if (row?.busy === 0) { done = asked; settle() }
    } finally {
      sqlite.pragma(`busy_timeout = ${previous}`)
    }
  }
  // A worker still starting (seconds under a TypeScript loader) has nothing to close: a stop
  // then terminates it rather than waiting for it to start only to be told to stop.
  let ready = false
  worker.on('message', (message: unknown) => {
    if (message === 'ready') ready = true
    else if (typeof message === 'object' && message !== null && 'truncated' in message) {
      done = Math.max(done, Number(message.truncated))
      settle()
    }
  })
  return {
    async truncate (waitMs = 2000) {
      const id = ++asked
      if (!(alive && ready)) truncateHere(true)
      if (done >= id) return true
      // the worker tries at once and then at every interval (at its start, if still starting)
      if (alive) worker.postMessage({ truncate: id })
      return await new Promise<boolean>(resolve => {
        const waiter = { id, resolve }
        waiting.add(waiter)
        setTimeout(() => { if (waiting.delete(waiter)) resolve(false) }, waitMs).unref()
      })
    },
    async stop () {
      stopping = true
      worker.ref() // keep the process alive until the worker has closed its connection
      if (ready) worker.postMessage('stop')
      else await worker.terminate()
      await exited
      // a truncation the worker could not finish (or never started) is done before closing
      if (done < asked && sqlite.open) truncateHere(false)
    }
  }
}
