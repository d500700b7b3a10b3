import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { access, constants } from 'node:fs/promises'
import http from 'node:http'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import type { Test } from 'tap'

// Real processes for the tests that need them: the server as `npm start` runs it (from the
// TypeScript sources here), and a private redis-server on a port of its own (so that a
// test can stop and restart Redis while the machine's own keeps running).

const root = join(import.meta.dirname, '..')

export interface ServerProcess { child: ChildProcess, output: () => string }

/** Starts `server.ts` with only PATH and `env` in its environment (HOST 127.0.0.1, PORT 0 unless given). */
export function startServer (env: Record<string, string>): ServerProcess {
  let output = ''
  const child = spawn(process.execPath, [...process.execArgv, join(root, 'server.ts')], {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stdout?.on('data', chunk => { output += String(chunk) })
  child.stderr?.on('data', chunk => { output += String(chunk) })
  return { child, output: () => output }
}

/** The server's base URL once it listens (up to 2 minutes: compiling the sources on a loaded machine is slow). */
export async function listening (server: ServerProcess): Promise<string> {
  for (let i = 0; i < 1200; i++) {
    const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(server.output())
    if (match?.[1] !== undefined) return match[1]
    if (server.child.exitCode !== null) throw new Error(`server exited: ${server.output()}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`server did not listen: ${server.output()}`)
}

/** Stops a process (SIGTERM unless told otherwise) and waits for it to exit. */
export async function stopProcess (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill(signal)
  await exited
}

/** Waits (up to `ms`, a minute by default) until the condition holds. */
export async function until (condition: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await condition()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A redis-server of the test's own (Debian's binary), on a free port; `stop()` and `start()` again on the same port. */
export class PrivateRedis {
  #child: ChildProcess | undefined
  private constructor (readonly port: number) {}

  get url (): string { return `redis://127.0.0.1:${this.port}` }

  static async start (): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort())
    await redis.start()
    return redis
  }

  async start (): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    let output = ''
    child.stdout?.on('data', chunk => { output += String(chunk) })
    await until(() => {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`)
      return /Ready to accept connections/.test(output)
    }, 'redis-server is ready', 10_000)
  }

  /** Stops it answering (SIGSTOP) while its connections stay open; `thaw()` resumes it. */
  freeze (): void { this.#child?.kill('SIGSTOP') }
  thaw (): void { this.#child?.kill('SIGCONT') }

  /** Kills it (SIGKILL: an outage, not a shutdown). */
  async stop (): Promise<void> {
    if (this.#child !== undefined) await stopProcess(this.#child, 'SIGKILL')
    this.#child = undefined
  }
}

/** Whether Debian's redis-server is installed (a test of an outage needs one of its own). */
export const hasRedisServer = await new Promise<boolean>(resolve => {
  const child = spawn('redis-server', ['--version'], { stdio: 'ignore' })
  child.on('error', () => resolve(false))
  child.on('exit', code => resolve(code === 0))
})

/** Debian's haproxy binary, if installed (in PATH or the sbin folders). */
export const haproxy = await (async (): Promise<string | undefined> => {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']) {
    try {
      await access(join(dir, 'haproxy'), constants.X_OK)
      return join(dir, 'haproxy')
    } catch {}
  }
  return undefined
})()

/**
 * haproxy running deploy/haproxy.cfg (the file compose mounts) in front of two instances
 * (host:port each), on a free port; stopped when the test ends. Resolves once /readyz answers through it.
 */
export async function startHaproxy (t: Test, serverA: string, serverB: string): Promise<{ base: string, child: ChildProcess, output: () => string }> {
  const port = await freePort()
  let output = ''
  const child = spawn(haproxy ?? 'haproxy', ['-f', join(root, 'deploy', 'haproxy.cfg')], {
    env: { PATH: process.env.PATH, LISTEN: `127.0.0.1:${port}`, SERVER_A: serverA, SERVER_B: serverB },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stdout?.on('data', chunk => { output += String(chunk) })
  child.stderr?.on('data', chunk => { output += String(chunk) })
  t.teardown(async () => { await stopProcess(child) })
  const base = `http://127.0.0.1:${port}`
  await until(async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${output}`)
    return await new Promise<boolean>(resolve => {
      http.get(`${base}/readyz`, { agent: false }, res => { res.resume(); resolve(res.statusCode === 200) }).on('error', () => resolve(false))
    })
  }, 'the balancer answers /readyz')
  return { base, child, output: () => output }
}
