import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Session } from 'node:inspector'
import { PerformanceObserver, constants, monitorEventLoopDelay } from 'node:perf_hooks'

// Preloaded into the server by the bench only (`node --import <this> dist/server.js`, with
// BENCH_ELD_FILE set): samples the event loop's delay every 2 ms, and on SIGWINCH writes
// what it saw since the last SIGWINCH (or since start) to BENCH_ELD_FILE as JSON, in ms,
// then starts afresh. The server itself knows nothing of it. SIGWINCH, because nothing in a
// server without a terminal listens to it and it is ignored by default (the server's
// close-with-grace takes SIGUSR2, SIGHUP and the others as a request to shut down).
//
// With BENCH_PROFILE_FILE set too, the first SIGWINCH also starts a CPU profile and the
// second writes it there: a profile of the measured window only, not of the start, the
// seeding or the sockets' opening (`--cpu-prof` profiles the whole process).

/** The garbage collector's pauses of the main thread in the window, in ms: all of them, and the major (mark-compact) ones. */
export interface GcPauses { count: number, totalMs: number, maxMs: number, major: number, majorMaxMs: number }

export interface EventLoopDelay { p50: number, p99: number, max: number, mean: number, samples: number, gc?: GcPauses }

// With BENCH_SQL_FILE set too: every better-sqlite3 statement is timed (wall clock, by its
// SQL), and each SIGWINCH writes the window's totals there, heaviest first (`BENCH_SQL_PROFILE=1
// npm run bench -- --scenario realistic` prints them). The timing itself costs about 1 µs a
// statement.
const sqlFile = process.env.BENCH_SQL_FILE
const statements = new Map<string, { calls: number, us: number }>()
if (sqlFile !== undefined && sqlFile !== '') {
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => { prepare: (sql: string) => object, close: () => void }
  const probe = new Database(':memory:')
  const prototype = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, (...args: unknown[]) => unknown>
  probe.close()
  for (const method of ['all', 'run', 'get', 'iterate']) {
    const original = prototype[method]
    if (original === undefined) continue
    prototype[method] = function (this: { source: string }, ...args: unknown[]) {
      const started = process.hrtime.bigint()
      try {
        return original.apply(this, args)
      } finally {
        const key = `${method} ${this.source.replace(/\s+/g, ' ')}`
        const entry = statements.get(key) ?? { calls: 0, us: 0 }
        entry.calls++
        entry.us += Number(process.hrtime.bigint() - started) / 1000
        statements.set(key, entry)
      }
    }
  }
}

function writeStatements (): void {
  if (sqlFile === undefined || sqlFile === '') return
  const rows = [...statements].sort((a, b) => b[1].us - a[1].us)
    .map(([sql, { calls, us }]) => `${(us / 1000).toFixed(0).padStart(7)} ms ${String(calls).padStart(8)} × ${(us / calls).toFixed(1).padStart(7)} µs  ${sql.slice(0, 200)}`)
  writeFileSync(sqlFile, rows.join('\n') + '\n')
  statements.clear()
}

const file = process.env.BENCH_ELD_FILE
const profileFile = process.env.BENCH_PROFILE_FILE
if (file !== undefined && file !== '') {
  const histogram = monitorEventLoopDelay({ resolution: 2 })
  histogram.enable()
  let gc: GcPauses = { count: 0, totalMs: 0, maxMs: 0, major: 0, majorMaxMs: 0 }
  new PerformanceObserver(list => {
    for (const entry of list.getEntries()) {
      gc.count++
      gc.totalMs += entry.duration
      gc.maxMs = Math.max(gc.maxMs, entry.duration)
      if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major++
        gc.majorMaxMs = Math.max(gc.majorMaxMs, entry.duration)
      }
    }
  }).observe({ entryTypes: ['gc'] })
  let session: Session | undefined
  const report = (): void => {
    const ms = (ns: number): number => ns / 1e6
    const seen: EventLoopDelay = { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), mean: ms(histogram.mean), samples: histogram.count, gc }
    writeFileSync(file, JSON.stringify(seen))
    histogram.reset()
    gc = { count: 0, totalMs: 0, maxMs: 0, major: 0, majorMaxMs: 0 }
    writeStatements()
  }
  process.on('SIGWINCH', () => {
    if (profileFile === undefined || profileFile === '') { report(); return }
    if (session === undefined) {
      // the profiler first: its start stalls the loop, and that is not the window's
      const started = new Session()
      session = started
      started.connect()
      started.post('Profiler.enable', () => { started.post('Profiler.start', () => { setImmediate(report) }) })
    } else {
      report()
      const done = session
      session = undefined
      done.post('Profiler.stop', (error, result) => {
        if (error === null) writeFileSync(profileFile, JSON.stringify(result.profile))
        done.disconnect()
      })
    }
  })
}
