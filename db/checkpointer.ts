import { Worker } from 'node:worker_threads'
import type { Database as SQLiteDatabase } from 'better-sqlite3'

export interface Checkpointer {
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
  const exited = new Promise<void>(resolve => {
    worker.once('exit', () => {
      if (!stopping && sqlite.open) sqlite.pragma('wal_autocheckpoint = 1000')
      resolve()
    })
  })
  worker.on('error', () => {}) // the exit handler above falls back
  // A worker still starting (seconds under a TypeScript loader) has nothing to close: a stop
  // then terminates it rather than waiting for it to start only to be told to stop.
  let ready = false
  worker.once('message', message => { if (message === 'ready') ready = true })
  return {
    async stop () {
      stopping = true
      worker.ref() // keep the process alive until the worker has closed its connection
      if (ready) worker.postMessage('stop')
      else await worker.terminate()
      await exited
    }
  }
}
