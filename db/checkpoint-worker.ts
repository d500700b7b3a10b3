import { parentPort, workerData } from 'node:worker_threads'
import SQLite from 'better-sqlite3'

// Runs SQLite's WAL checkpoints on a thread of their own (see checkpointer.ts): the
// checkpoint copies the log into the database file and fsyncs it, which on the event
// loop stalls every request and socket for milliseconds.

const { file, intervalMs, restartPages } = workerData as { file: string, intervalMs: number, restartPages: number | null }
const db = new SQLite(file)
// Short: while a TRUNCATE checkpoint waits for a reader it holds the write lock, and the
// server's writes wait on the event loop. Giving up soon and trying again at the next tick
// costs a little delay; waiting long would stall every request. PASSIVE never waits.
db.pragma('busy_timeout = 50')

/** The highest truncation asked for, and the highest done (each after its request arrived). */
let asked = 0
let done = 0

interface CheckpointRow { busy: number, log: number, checkpointed: number }

/** PASSIVE: copy what no reader still needs, without waiting for anyone. */
function passive (): CheckpointRow | undefined {
  return (db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[])[0]
}

/**
 * Copies the whole log into the database file and empties the log (an erasure's old page
 * images must not stay in it). Fails, to be tried again, while a reader still uses the log
 * or a writer holds it beyond the busy timeout.
 */
function truncate (): boolean {
  passive() // the bulk of the copying, without blocking writers
  try {
    const [row] = db.pragma('wal_checkpoint(TRUNCATE)') as CheckpointRow[]
    return row?.busy === 0
  } catch {
    return false // SQLITE_BUSY: try again
  }
}

// Each failed attempt held the write lock up to the busy timeout: while a reader keeps the log
// for long (a backup), the attempts space out, doubling up to 10 s, so writes are not slowed throughout.
let backoffMs = 0
let nextTry = 0

function truncateIfAsked (): void {
  if (done >= asked) return
  const target = asked
  if (truncate()) {
    done = target
    backoffMs = 0
    parentPort?.postMessage({ truncated: done })
  } else {
    backoffMs = Math.min(Math.max(2 * backoffMs, intervalMs), 10_000)
    nextTry = Date.now() + backoffMs
  }
}

// Asked the parent to hold its writes (checkpointer.ts), and not yet told it to go on.
let holding = false
// the log's length (pages) at the last look
let lastLog = 0

const timer = setInterval(() => {
  if (done < asked && Date.now() >= nextTry) return truncateIfAsked()
  const row = passive()
  // A log this long that did not start over: the writes never paused long enough for it.
  // Not when nothing was written since the last look (every page is copied, and the next
  // write starts the log over by itself: a server gone quiet), nor while a reader keeps
  // older pages from being copied (a backup: the log could not start over anyway, and
  // holding the writes would only delay them).
  const grew = row !== undefined && row.log !== lastLog
  lastLog = row?.log ?? 0
  if (restartPages !== null && !holding && grew && row.log >= restartPages && row.log - row.checkpointed < restartPages / 4) {
    holding = true
    parentPort?.postMessage('hold')
  }
}, intervalMs)

parentPort?.on('message', (message: unknown) => {
  if (message === 'held') {
    // nothing commits now: copy the last pages, and the next commit starts the log over
    try {
      passive()
    } finally {
      holding = false
      parentPort?.postMessage('caught up')
    }
    return
  }
  if (typeof message === 'object' && message !== null && 'truncate' in message) {
    asked = Math.max(asked, Number(message.truncate))
    nextTry = 0 // a new erasure: try at once
    truncateIfAsked()
    return
  }
  if (message !== 'stop') return
  clearInterval(timer)
  db.close()
  parentPort?.close()
})
// from here on a stop closes the connection; before it, the parent may simply terminate us
parentPort?.postMessage('ready')
