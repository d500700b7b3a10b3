import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import ts from 'typescript'
import type { CryptaChatClient } from '../src/index.js'

// The types catch a wrong call at compile time. Each `@ts-expect-error` below must be an error,
// or `npm run build` (tsc, which compiles this file) fails; the test also compiles calls with a
// wrong body and the same calls right, and reads the compiler's verdict on each.
// Note: openapi-fetch infers the body of `api.POST(...)`, so an extra field there is not an
// error (a missing or mistyped one is); the client's own methods (sendMessage, ack, ...) refuse both.

export function wrongCalls (client: CryptaChatClient): unknown[] {
  return [
    // @ts-expect-error a body field send_message does not have
    client.sendMessage({ recipient_username: 'bob', sender_blob: 'a', recipient_blob: 'b', recipient: 'bob' }),
    // @ts-expect-error sender_blob is required
    client.sendMessage({ recipient_username: 'bob', recipient_blob: 'b' }),
    // @ts-expect-error recipient_blob is a string, through the typed routes
    client.api.POST('/send_message', { body: { recipient_username: 'bob', sender_blob: 'a', recipient_blob: 1 } }),
    // @ts-expect-error a route the server does not have
    client.api.GET('/no_such_route'),
    // @ts-expect-error up_to_id is a number
    client.ack({ up_to_id: '12' }),
    // @ts-expect-error an envelope without its destination device
    client.sendEnvelopes('bob', { messages: [{ type: 1, destinationRegistrationId: 1, content: 'AA==' }] })
  ]
}

const root = join(import.meta.dirname, '..', '..')

/** The compiler's errors for each snippet, compiled in one program against src/ as an app would import it. */
function diagnostics (snippets: string[]): Array<Array<{ code: number, text: string }>> {
  const dir = mkdtempSync(join(root, '.typecheck-'))
  try {
    const files = snippets.map((snippet, i) => {
      const file = join(dir, `call${i}.ts`)
      writeFileSync(file, `import type { CryptaChatClient } from '../src/index.js'\nexport async function call (client: CryptaChatClient): Promise<unknown> {\n  return await ${snippet}\n}\n`)
      return file
    })
    const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })
    assert.ok(config !== undefined)
    const program = ts.createProgram(files, { ...config.options, noEmit: true })
    const all = ts.getPreEmitDiagnostics(program)
    return files.map(file => all.filter(d => d.file?.fileName === file).map(d => ({ code: d.code, text: ts.flattenDiagnosticMessageText(d.messageText, '\n') })))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('a wrong body field is a compile error that names it; the right body compiles', () => {
  const [right, rightRaw, extra, mistyped] = diagnostics([
    "client.sendMessage({ recipient_username: 'bob', sender_blob: 'a', recipient_blob: 'b' })",
    "client.api.POST('/send_message', { body: { recipient_username: 'bob', sender_blob: 'a', recipient_blob: 'b', client_msg_id: 'x' } })",
    "client.sendMessage({ recipient_username: 'bob', sender_blob: 'a', recipient_blob: 'b', wrong_field: 1 })",
    "client.api.POST('/send_message', { body: { recipient_username: 'bob', sender_blob: 'a', recipient_blob: 'b', client_msg_id: 7 } })"
  ])
  assert.deepEqual(right, [])
  assert.deepEqual(rightRaw, [])
  assert.equal(extra?.length, 1)
  assert.equal(extra?.[0]?.code, 2353, 'Object literal may only specify known properties')
  assert.match(extra?.[0]?.text ?? '', /wrong_field/)
  assert.equal(mistyped?.length, 1)
  assert.equal(mistyped?.[0]?.code, 2322, 'Type number is not assignable to type string')
})
