import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

// The processes under test: the real server (`node dist/server.js`) and the hello-world
// ceiling, each on a free port with its output sent to a log file.

export interface Served {
  name: string
  url: string
  port: number
  pid: number
  /** Resident memory of the process, from /proc (Linux), in bytes. */
  rss: () => number
  /** CPU time the process has used so far (all threads, user + system), in seconds. */
  cpu: () => number
  stop: () => Promise<void>
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

// /proc/<pid>/stat counts in clock ticks: 100 a second on Linux (getconf CLK_TCK)
const TICKS = 100

export function cpuOf (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the fields after the command name (which may hold spaces) in parentheses
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS
}

export function rssOf (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1]
  return kb === undefined ? NaN : Number(kb) * 1024
}

/** Starts `node <script>` with the given environment; resolves once `probe` answers 200. */
export async function startNode (
  name: string, script: string, env: Record<string, string>, logFile: string,
  options: { probe?: string, nodeArgs?: string[] } = {}
): Promise<Served> {
  const port = await freePort()
  const log = openSync(logFile, 'a')
  const child: ChildProcess = spawn(process.execPath, [...options.nodeArgs ?? [], script], {
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', log, log]
  })
  closeSync(log)
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} before answering (see ${logFile})`)
    try {
      const res = await fetch(url + (options.probe ?? '/'))
      if (res.ok) break
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${name} did not answer within 30 s (see ${logFile})`)
    }
    await sleep(50)
  }
  const pid = child.pid ?? 0
  return {
    name,
    url,
    port,
    pid,
    rss: () => rssOf(pid),
    cpu: () => cpuOf(pid),
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    }
  }
}
