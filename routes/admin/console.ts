import { readFile } from 'node:fs/promises'
import type { FastifyPluginAsync } from 'fastify'

// The console's page, stylesheet and script: static files, no framework, no inline code, so
// a strict Content-Security-Policy holds. The page asks for the admin token and keeps it in
// sessionStorage; every API call sends it as a header, so there is no cookie to forge.

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const FILES = [
  ['/admin', 'index.html', 'text/html; charset=utf-8'],
  ['/admin/console.css', 'console.css', 'text/css; charset=utf-8'],
  ['/admin/console.js', 'console.js', 'text/javascript; charset=utf-8']
] as const

const webConsole: FastifyPluginAsync = async (fastify) => {
  for (const [url, file, type] of FILES) {
    const body = await readFile(new URL(`./static/${file}`, import.meta.url))
    fastify.get(url, { schema: { hide: true }, logLevel: 'warn' }, async (request, reply) => await reply
      .header('content-type', type)
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(body))
  }
}

export default webConsole
