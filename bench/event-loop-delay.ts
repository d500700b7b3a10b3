import { writeFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'

// Preloaded into the server by the bench only (`node --import <this> dist/server.js`, with
// BENCH_ELD_FILE set): samples the event loop's delay every 2 ms, and on SIGWINCH writes
// what it saw since the last SIGWINCH (or since start) to BENCH_ELD_FILE as JSON, in ms,
// then starts afresh. The server itself knows nothing of it. SIGWINCH, because nothing in a
// server without a terminal listens to it and it is ignored by default (the server's
// close-with-grace takes SIGUSR2, SIGHUP and the others as a request to shut down).

export interface EventLoopDelay { p50: number, p99: number, max: number, mean: number, samples: number }

const file = process.env.BENCH_ELD_FILE
if (file !== undefined && file !== '') {
  const histogram = monitorEventLoopDelay({ resolution: 2 })
  histogram.enable()
  process.on('SIGWINCH', () => {
    const ms = (ns: number): number => ns / 1e6
    const seen: EventLoopDelay = { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), mean: ms(histogram.mean), samples: histogram.count }
    writeFileSync(file, JSON.stringify(seen))
    histogram.reset()
  })
}
