import { parseArgs } from 'node:util'

// What the server's own CPU pays for one small PostgreSQL read on the pipelined connection
// (db/perf/pg-pool.ts), pg's work included, PostgreSQL's not: `batches` turns of `batch`
// reads each, after 200 turns of warm-up; CPU µs a read (user and system) of this process.
// Compare two builds alternately, run for run (a shared machine is noisy):
//   npx tsc -p bench && node dist/bench/micro-pg-read.js [--build /other/checkout]
// DATABASE_URL as for the tests (default: the local server's `test` database).

const { values: args } = parseArgs({
  options: {
    build: { type: 'string', default: new URL('../..', import.meta.url).pathname },
    batch: { type: 'string', default: '32' },
    batches: { type: 'string', default: '1500' }
  }
})
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const batch = Number(args.batch)
const batches = Number(args.batches)

const { ReadPipeline } = await import(new URL('dist/db/perf/pg-pool.js', `file://${args.build.replace(/\/?$/, '/')}`).href) as typeof import('../db/perf/pg-pool.js')
const reads = new ReadPipeline({ connectionString: url })
const text = 'select $1::int as a, $2::text as b, $3::int as c'
async function turn (): Promise<void> {
  await Promise.all(Array.from({ length: batch }, async (_, i) => await reads.rows(text, [i, 'x', 3])))
}

for (let i = 0; i < 200; i++) await turn()
const before = process.cpuUsage()
for (let i = 0; i < batches; i++) await turn()
const used = process.cpuUsage(before)
const n = batch * batches
console.log(`${args.build}: ${((used.user + used.system) / n).toFixed(2)} µs of CPU a read (user ${(used.user / n).toFixed(2)}, system ${(used.system / n).toFixed(2)}), ${n} reads`)
await reads.end()
