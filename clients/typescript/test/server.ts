import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import type { TestContext } from 'node:test'
import { join } from 'node:path'
import { CryptaChatClient, type ClientOptions, type CursorStore, type StreamEvent } from '../src/index.js'

// A real server for the tests: the repository's own build (`npm ci && npm run build` at the
// root first), started as `node dist/server.js` with a fresh DATA_DIR, a JWT_SECRET and a free PORT.

const root = join(import.meta.dirname, '..', '..', '..', '..')
const entry = join(root, 'dist', 'server.js')

export class ServerProcess {
  #child: ChildProcess | undefined
  #output = ''
  readonly dataDir = mkdtempSync(join(tmpdir(), 'cryptachat-client-'))
  readonly #env: Record<string, string>

  private constructor (readonly port: number, env: Record<string, string>) {
    this.#env = env
  }

  get url (): string { return `http://127.0.0.1:${this.port}` }
  get output (): string { return this.#output }

  static async start (env: Record<string, string> = {}): Promise<ServerProcess> {
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm ci && npm run build\` at the repository root first`)
    const server = new ServerProcess(await freePort(), { JWT_SECRET: randomBytes(48).toString('base64'), ...env })
    await server.start()
    return server
  }

  /** Starts (again, on the same port and data): resolves once /healthz answers. */
  async start (): Promise<void> {
    this.#child = spawn(process.env.SERVER_NODE ?? process.execPath, [entry], {
      env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(this.port), DATA_DIR: this.dataDir, LOG_LEVEL: 'warn', ...this.#env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.#child.stdout?.on('data', chunk => { this.#output += String(chunk) })
    this.#child.stderr?.on('data', chunk => { this.#output += String(chunk) })
    const deadline = Date.now() + 60_000
    for (;;) {
      if (this.#child.exitCode !== null) throw new Error(`the server exited: ${this.#output}`)
      const up = await fetch(`${this.url}/healthz`).then(r => r.ok, () => false)
      if (up) return
      if (Date.now() > deadline) throw new Error(`the server did not start: ${this.#output}`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  /** SIGTERM, as an operator's restart: sockets get 1001, the process exits. */
  async stop (): Promise<void> {
    const child = this.#child
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }

  async close (): Promise<void> {
    await this.stop()
    rmSync(this.dataDir, { recursive: true, force: true })
  }
}

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A cursor store in memory, as an app's database would keep it. */
export class MemoryCursor implements CursorStore {
  value: string | undefined
  saves = 0
  load (): string | undefined { return this.value }
  save (cursor: string | undefined): void { this.value = cursor; this.saves++ }
}

/** Every event a subscription handed over, in order, and a way to wait for some. */
export class Inbox {
  readonly events: StreamEvent[] = []
  readonly onEvent = (event: StreamEvent): void => { this.events.push(event) }

  messages (): Array<{ id: number, blob: string }> {
    return this.events.flatMap(e => e.type === 'message' ? [{ id: e.message.id, blob: e.message.encrypted_blob }] : [])
  }

  async until (what: string, condition: (events: StreamEvent[]) => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!condition(this.events)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.events.map(e => e.type))}`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }
}

export function uniqueName (prefix: string): string {
  return `${prefix}_${randomUUID().slice(0, 8)}`
}

export const PASSWORD = 'correct horse battery staple'

/** A registered, logged-in user, its client closed when the test ends; `logins` counts the credentials callback's calls. */
export async function user (t: TestContext, server: ServerProcess, prefix: string, options: Partial<ClientOptions> = {}, device?: { registrationId: number }): Promise<{ client: CryptaChatClient, username: string, logins: () => number }> {
  const username = uniqueName(prefix)
  let logins = 0
  const client = new CryptaChatClient({
    baseUrl: server.url,
    credentials: () => { logins++; return { username, password: PASSWORD, ...(device === undefined ? {} : { device }) } },
    ...options
  })
  t.after(async () => { await client.close() })
  const registered = await client.api.POST('/register', { body: { username, password: PASSWORD } })
  if (registered.response.status !== 201) throw new Error(`register: ${registered.response.status}`)
  await client.login()
  return { client, username, logins: () => logins }
}

/** `a` asks `b` for a chat and `b` accepts. */
export async function befriend (a: { client: CryptaChatClient, username: string }, b: { client: CryptaChatClient, username: string }): Promise<void> {
  const asked = await a.client.api.POST('/request_chat', { body: { recipient_username: b.username } })
  if (!asked.response.ok) throw new Error(`request_chat: ${asked.response.status}`)
  const accepted = await b.client.api.POST('/accept_chat', { body: { requester_username: a.username } })
  if (!accepted.response.ok) throw new Error(`accept_chat: ${accepted.response.status}`)
}
