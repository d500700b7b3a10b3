import t from 'tap'
import { build } from './helper.js'

const LIFECYCLE = ['/logout', '/change_password', '/delete_account', '/decline_chat', '/block_user', '/unblock_user', '/get_blocked', '/remove_contact']

t.test('/docs/json documents every route with a summary, a tag, its security and its statuses', async t => {
  const app = await build(t)
  const doc = (await app.inject({ url: '/docs/json' })).json()
  const tags = new Set(doc.tags.map((tag: { name: string }) => tag.name))
  for (const path of LIFECYCLE) t.ok(doc.paths[path], `${path} is documented`)
  for (const [path, item] of Object.entries<Record<string, { summary?: string, tags?: string[], security?: unknown[], responses: Record<string, unknown> }>>(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const name = `${method.toUpperCase()} ${path}`
      t.ok(operation.summary, `${name} has a summary`)
      t.ok(operation.tags?.length === 1 && tags.has(operation.tags[0]), `${name} has a declared tag`)
      const statuses = Object.keys(operation.responses)
      t.ok(statuses.some(status => status.startsWith('2')), `${name} documents its success`)
      if (operation.security !== undefined) t.ok(statuses.includes('401'), `${name} is protected and documents 401`)
      if (method === 'post') t.ok(statuses.includes('400') && statuses.includes('413') && statuses.includes('415'), `${name} documents 400, 413 and 415`)
    }
  }
  for (const path of LIFECYCLE) {
    const operation = Object.values<{ security?: unknown[] }>(doc.paths[path])[0]
    t.same(operation?.security, [{ bearerAuth: [] }], `${path} needs a bearer token`)
  }
})
