import { parentPort, workerData } from 'node:worker_threads'
import SQLite from 'better-sqlite3'

// Runs SQLite's WAL checkpoints on a thread of their own (see checkpointer.ts): the
// checkpoint copies the log into the database file and fsyncs it, which on the event
// loop stalls every request and socket for milliseconds.

const { file, intervalMs } = workerData as { file: string, intervalMs: number }
const db = new SQLite(file)
db.pragma('busy_timeout = 5000')
const timer = setInterval(() => {
  // PASSIVE: copy what no reader still needs, without waiting for anyone
  db.pragma('wal_checkpoint(PASSIVE)')
}, intervalMs)

parentPort?.on('message', message => {
  if (message !== 'stop') return
  clearInterval(timer)
  db.close()
  parentPort?.close()
})
// from here on a stop closes the connection; before it, the parent may simply terminate us
parentPort?.postMessage('ready')
