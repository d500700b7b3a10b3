import { cpus, totalmem } from 'node:os'

// One row per measured scenario; the same rows become the JSON result and the Markdown table.

export interface Row {
  scenario: string
  /** what drove it: "32 conn" or "1000 msg/s" */
  load: string
  rps: number
  /** the hello-world's req/s measured right before this scenario */
  ceiling: number | null
  /** rps over that ceiling */
  ratio: number | null
  /**
   * CPU time the server process spent per request (all threads), and the hello-world's per
   * request in its ceiling run: unlike req/s, this barely moves with the machine's load.
   */
  cpu: { us: number, ceilingUs: number } | null
  p50: number
  p99: number
  max: number
  errors: number
  /** the issue's "must", and whether this run met it */
  must: string
  met: boolean | null
  note: string
  /** a scenario's own measurements beyond the columns (the JSON only) */
  details?: Record<string, unknown>
}

export interface Report {
  date: string
  db: 'sqlite' | 'postgres'
  /** Where PostgreSQL was reached: its host:port, or the directory of its Unix socket. */
  postgres?: string
  /** With --instances N: N servers on one database, their delivery hub in Redis (version, host:port). */
  instances?: number
  hub?: { redis: string, at: string }
  tool: string
  smoke: boolean
  seconds: number
  /** load: the load average before the run; loadAfter: after it (other work on a shared machine shows here) */
  machine: { cpu: string, cores: number, memoryGiB: number, node: string, load: number[], loadAfter?: number[] }
  ceiling: { runs: number[] }
  rows: Row[]
  skipped: Array<{ scenario: string, reason: string }>
}

export function machine (loadavg: number[]): Report['machine'] {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    load: loadavg.map(l => Math.round(l * 100) / 100)
  }
}

const num = (n: number, digits = 0): string => Number.isFinite(n) ? n.toFixed(digits) : '-'
const ms = (n: number): string => !Number.isFinite(n) ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(1)

export function markdown (report: Report): string {
  const m = report.machine
  const lines = [
    `Run ${report.date} on ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}, load average before ${m.load.join(' ')}${m.loadAfter === undefined ? '' : `, after ${m.loadAfter.join(' ')}`}; ` +
      `${report.db === 'sqlite' ? 'SQLite' : `PostgreSQL (at ${report.postgres ?? 'unknown'})`}` +
      `${report.hub === undefined ? '' : `, ${report.instances ?? '?'} server instances on one schema with the Redis hub (Redis ${report.hub.redis} at ${report.hub.at})`}, load by ${report.tool}, ${report.seconds} s per scenario${report.smoke ? ' (smoke run: numbers are not meaningful)' : ''}.`,
    report.ceiling.runs.length === 0
      ? 'No scenario under HTTP load in this run: no ceiling measured.'
      : `Ceiling: a bare Fastify hello-world on the same machine, measured for ${Math.min(2, report.seconds)} s right before each scenario ` +
        `(${num(Math.min(...report.ceiling.runs))} to ${num(Math.max(...report.ceiling.runs))} req/s in this run); each ratio is to the ceiling measured just before it. ` +
        'CPU µs/req is the CPU time the server process spent per request (all its threads): it moves far less with the load of a shared machine than req/s does.',
    '',
    '| scenario | load | req/s | ceiling | × ceiling | CPU µs/req | × ceiling CPU | p50 ms | p99 ms | max ms | errors | must | met | notes |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|'
  ]
  for (const r of report.rows) {
    const ratio = r.ratio === null ? '' : `1/${num(1 / r.ratio, 1)}`
    const met = r.met === null ? '' : r.met ? 'yes' : '**no**'
    // a scenario without a ceiling (realistic: per send) has CPU but no ratio
    const cpu = r.cpu === null ? ' | ' : `${num(r.cpu.us)} | ${Number.isFinite(r.cpu.ceilingUs) ? `1/${num(r.cpu.us / r.cpu.ceilingUs, 1)}` : ''}`
    lines.push(`| ${r.scenario} | ${r.load} | ${num(r.rps)} | ${r.ceiling === null ? '' : num(r.ceiling)} | ${ratio} | ${cpu} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.errors} | ${r.must} | ${met} | ${r.note} |`)
  }
  for (const s of report.skipped) lines.push(`| ${s.scenario} |${' |'.repeat(12)} skipped: ${s.reason} |`)
  return lines.join('\n') + '\n'
}
