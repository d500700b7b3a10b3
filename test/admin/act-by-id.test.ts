import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import t, { type Test } from 'tap'
import { app as appPlugin, serverOptions } from '../../app.js'
import { deleteUser, setUserDisabled } from '../../db/admin.js'
import * as users from '../../db/users.js'
import { ADMIN_TOKEN, bearer, register, testConfig, user } from '../helper.js'

// The console looks a user up by name once and then acts on that user's id: the database
// step and the disconnect never look the name up again, so a name deleted and registered
// anew in between (another person now) is not the one disabled, erased or disconnected.

t.test('the database functions act on the id they are given, not on whoever has the name now', async t => {
  const app = await buildWith(t)
  await user(app, 'alice')
  const old = await users.findUserByName(app.db, 'alice')
  if (old === undefined) throw new Error('no alice')
  // alice leaves and someone else registers the name
  await users.eraseUser(app.db, old.id)
  t.equal((await register(app, 'alice')).statusCode, 201)
  const newcomer = await users.findUserWithHash(app.db, 'alice')
  t.not(newcomer?.id, old.id)

  t.equal(await setUserDisabled(app.db, old, true, 'test'), 'not_found')
  t.equal(await deleteUser(app.db, old, 'test'), 'not_found')
  t.equal((await users.findUserWithHash(app.db, 'alice'))?.disabled_at, null, 'the newcomer is not disabled')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: 'correct horse battery' } })).statusCode, 200, 'and can log in')
})

for (const [method, action, file] of [['POST', 'disable', 'set-user-disabled'], ['DELETE', '', 'delete-user']] as const) {
  t.test(`${method} /admin/api/users/:username${action === '' ? '' : '/' + action}: a re-registration between the lookup and the action leaves the newcomer alone`, async t => {
    // the route's own lookup, followed at once by alice leaving and someone else taking her name
    let raced = false
    const route = await t.mockImport<{ default: FastifyPluginAsync }>(`../../routes/admin/api/${file}.js`, {
      '../../db/users.js': {
        ...users,
        requireUser: async (...args: Parameters<typeof users.requireUser>) => {
          const found = await users.requireUser(...args)
          if (!raced) {
            raced = true
            await users.eraseUser(app.db, found.id)
            await register(app, found.username)
          }
          return found
        }
      }
    })
    const app = await buildWith(t, route.default)
    const alice = await user(app, 'alice')
    const disconnected: number[] = []
    app.hub.disconnectUser = async (userId: number) => { disconnected.push(userId) }
    const res = await app.inject({ method, url: `/raced/users/alice${action === '' ? '' : '/' + action}`, headers: bearer(ADMIN_TOKEN) })
    t.ok(raced)
    t.equal(res.statusCode, 404, `the user the console looked up is gone: ${res.body}`)
    const newcomer = await users.findUserWithHash(app.db, 'alice')
    t.ok(newcomer, 'the newcomer is still there')
    t.equal(newcomer?.disabled_at, null, 'and not disabled')
    t.notOk(disconnected.includes(newcomer?.id ?? -1), 'nor disconnected')
    t.equal((await app.inject({ method: 'GET', url: '/get_contacts', headers: bearer(alice) })).statusCode, 401, "the old alice's token is dead (she was erased)")
  })
}

t.test('a console action disconnects the id it acted on', async t => {
  const app = await buildWith(t)
  await user(app, 'alice')
  const alice = await users.findUserByName(app.db, 'alice')
  const disconnected: number[] = []
  app.hub.disconnectUser = async (userId: number) => { disconnected.push(userId) }
  t.equal((await app.inject({ method: 'POST', url: '/admin/api/users/ALICE/disable', headers: bearer(ADMIN_TOKEN) })).statusCode, 200)
  t.equal((await app.inject({ method: 'DELETE', url: '/admin/api/users/alice', headers: bearer(ADMIN_TOKEN) })).statusCode, 200)
  t.same(disconnected, [alice?.id, alice?.id])
})

/** The app with ADMIN_TOKEN set, and a route plugin of the test's own under /raced. */
async function buildWith (t: Test, route?: FastifyPluginAsync): Promise<FastifyInstance> {
  const config = await testConfig(t, { ADMIN_TOKEN })
  const app = Fastify(serverOptions(config))
  await app.register(fp(appPlugin), { config })
  if (route !== undefined) await app.register(route, { prefix: '/raced' })
  await app.ready()
  t.teardown(async () => { await app.close() })
  return app
}
