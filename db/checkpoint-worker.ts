import { parentPort, workerData } from 'node:worker_threads'
import SQLite from 'better-sqlite3'

// Runs SQLite's WAL checkpoints on a thread of their own (see checkpointer.ts): the
// checkpoint copies the log into the database file and fsyncs it, which on the event
// loop stalls every request and socket for milliseconds.

const { file, intervalMs } = workerData as { file: string, intervalMs: number }
const db = new SQLite(file)
// Short: while a TRUNCATE checkpoint waits for a reader it holds the write lock, and the
// server's writes wait on the event loop. Giving up soon and trying again at the next tick
// costs a little delay; waiting long would stall every request. PASSIVE never waits.
db.pragma('busy_timeout = 50')

/** The highest truncation asked for, and the highest done (each after its request arrived). */
let asked = 0
let done = 0

/**
 * Copies the whole log into the database file and empties the log (an erasure's old page
 * images must not stay in it). Fails, to be tried again, while a reader still uses the log
 * or a writer holds it beyond the busy timeout.
 */
function truncate (): boolean {
  db.pragma('wal_checkpoint(PASSIVE)') // the bulk of the copying, without blocking writers
  try {
    const [row] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>
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

const timer = setInterval(() => {
  if (done < asked && Date.now() >= nextTry) truncateIfAsked()
  // PASSIVE: copy what no reader still needs, without waiting for anyone
  else db.pragma('wal_checkpoint(PASSIVE)')
}, intervalMs)

parentPort?.on('message', (message: unknown) => {
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
