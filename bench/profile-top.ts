import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'

// `node dist/bench/profile-top.js <file.cpuprofile> [N]`: the functions with the most self
// time, and the same time summed by package (or by our own folder), in percent of samples.

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

function owner (url: string): string {
  if (url === '') return '(native/idle)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]
  if (pkg !== undefined) return pkg
  if (url.startsWith('node:')) return 'node core'
  const ours = /\/dist\/([^/]+)\//.exec(url)?.[1]
  return ours === undefined ? basename(url) : `ours: ${ours}/`
}

export function summarize (profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  let total = 0
  let idle = 0
  const byFunction = new Map<string, number>()
  const byOwner = new Map<string, number>()
  for (const [id, time] of self) {
    const frame = byId.get(id)?.callFrame
    if (frame === undefined) continue
    total += time
    if (frame.functionName === '(idle)') { idle += time; continue }
    const where = frame.url === '' ? '' : ` ${frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${frame.lineNumber + 1}`
    const key = `${frame.functionName || '(anonymous)'}${where}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + time)
    const who = frame.functionName.startsWith('(') ? frame.functionName : owner(frame.url)
    byOwner.set(who, (byOwner.get(who) ?? 0) + time)
  }
  const busy = total - idle
  const pct = (t: number): string => `${((100 * t) / busy).toFixed(1).padStart(5)}%`
  const list = (m: Map<string, number>, n: number): string[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, t]) => `${pct(t)}  ${k}`)
  return [
    `busy ${(busy / 1e6).toFixed(1)} s of ${(total / 1e6).toFixed(1)} s sampled; percentages of busy time`,
    '', 'self time by package:', ...list(byOwner, 15),
    '', 'self time by function:', ...list(byFunction, top)
  ].join('\n')
}

// run as a command (not when bench/run.ts imports summarize)
const file = process.argv[1] === fileURLToPath(import.meta.url) ? process.argv[2] : undefined
if (file !== undefined) {
  process.stdout.write(summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25)) + '\n')
}
