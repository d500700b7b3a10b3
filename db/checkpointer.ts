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
  /** Resolves true once the worker runs, false when it stopped before (a stop while it started). */
  started: Promise<boolean>
  /** Calls `observe` with how long (in seconds) the writes were held each time the log started over (metrics). */
  observeHolds: (observe: (seconds: number) => void) => void
  stop: () => Promise<void>
}

export interface CheckpointerOptions {
  /** How often the worker copies the log into the database file. */
  intervalMs?: number
  /**
   * Holds back the connection's writes (db/perf/group-commit.ts holdGroupCommits): resolves
   * once none is being committed, and none starts until the returned function is called.
   * Without it the log can only start over when the writes pause by themselves.
   */
  holdWrites?: () => Promise<() => void>
  /** A log of this many pages or more is started over with the writes held (see below). */
  restartPages?: number
  /** Ends the connection's own read transaction, if one is open (db/perf/sqlite-driver.ts), before a checkpoint on it. */
  endReads?: () => void
}

/**
 * SQLite starts the log over (overwriting it from the top) only when a write begins with every
 * page of it copied into the database file. A checkpoint on another thread is always a few
 * commits behind a steady stream of writes, so that moment never came: under a steady load
 * the log grew by every page written (a gigabyte in a minute of the realistic bench), and
 * each commit extended the file, which costs the kernel more than overwriting it. So once the
 * log has `restartPages` pages, the worker asks for the writes to be held, copies the last
 * pages (with its fsyncs) while nothing commits, and lets them go: the next commit starts the
 * log over. The writes wait for that copy; the event loop does not.
 */
const RESTART_PAGES = 8192
/** The log file is cut back to this size when it starts over after a burst (journal_size_limit). */
export const WAL_SIZE_LIMIT = 64 * 1024 * 1024
/** A hold the worker does not end (it died) is let go after this long. */
const HOLD_LIMIT_MS = 1000

// The worker is compiled beside this module; under a TypeScript loader (tests) it is the .ts.
const workerUrl = new URL(`./checkpoint-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

/**
 * Moves the WAL checkpoints of `sqlite` (a WAL database file) off the event loop: the
 * connection stops checkpointing on commit and a worker thread checkpoints every
 * `intervalMs` instead. Should the worker die, the connection checkpoints itself again.
 * A committed transaction is in the WAL either way: this changes when the log is copied
 * into the database file, not what survives a crash.
 */
export function startCheckpointer (sqlite: SQLiteDatabase, file: string, options: CheckpointerOptions = {}): Checkpointer {
  const { intervalMs = 200, holdWrites, restartPages = RESTART_PAGES, endReads } = options
  const worker = new Worker(workerUrl, { workerData: { file, intervalMs, restartPages: holdWrites === undefined ? null : restartPages } })
  worker.unref()
  sqlite.pragma('wal_autocheckpoint = 0')
  sqlite.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`)
  // the release of the writes held for the worker, if any
  let holding: (() => void) | undefined
  let observeHold: ((seconds: number) => void) | undefined
  const letGo = (): void => {
    const release = holding
    holding = undefined
    release?.()
  }
  let stopping = false
  let alive = true
  const exited = new Promise<void>(resolve => {
    worker.once('exit', () => {
      alive = false
      letGo()
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
    endReads?.()
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
  let onReady = (): void => {}
  const started = Promise.race([new Promise<boolean>(resolve => { onReady = () => { resolve(true) } }), exited.then(() => false)])
  worker.on('message', (message: unknown) => {
    if (message === 'ready') {
      ready = true
      onReady()
    } else if (message === 'hold' && holdWrites !== undefined && holding === undefined) {
      holdWrites().then(release => {
        const timer = setTimeout(letGo, HOLD_LIMIT_MS).unref()
        const since = performance.now()
        holding = () => {
          clearTimeout(timer)
          release()
          observeHold?.((performance.now() - since) / 1000)
        }
        if (alive) worker.postMessage('held')
        else letGo()
      }, () => {})
    } else if (message === 'caught up') {
      letGo()
    } else if (typeof message === 'object' && message !== null && 'truncated' in message) {
      done = Math.max(done, Number(message.truncated))
      settle()
    }
  })
  return {
    started,
    observeHolds (observe) { observeHold = observe },
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
