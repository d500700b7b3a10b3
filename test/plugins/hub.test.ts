import t from 'tap'
import { LocalHub, type HubSignal } from '../../plugins/app/hub.js'

t.test('the local hub delivers hints to the listeners of the named users only, until they unsubscribe', async t => {
  const hub = new LocalHub()
  const got: Array<[string, HubSignal]> = []
  const offA = await hub.subscribe(1, signal => got.push(['a', signal]))
  const offB = await hub.subscribe(1, signal => got.push(['b', signal]))
  await hub.subscribe(2, signal => got.push(['other', signal]))
  await hub.publish([1, 1, 3])
  t.same(got, [['a', { kind: 'news' }], ['b', { kind: 'news' }]], 'once per listener, however often the user is named')
  got.length = 0
  await hub.disconnectUser(1, { jti: 'jti-1' })
  t.same(got, [['a', { kind: 'disconnect', jti: 'jti-1' }], ['b', { kind: 'disconnect', jti: 'jti-1' }]])
  offA()
  t.equal(hub.listenerCount(1), 1)
  offB()
  offB()
  t.equal(hub.listenerCount(1), 0)
  got.length = 0
  await hub.publish([1])
  t.same(got, [])
})

t.test('a listener may unsubscribe while being notified', async t => {
  const hub = new LocalHub()
  let calls = 0
  const off = await hub.subscribe(1, () => { calls++; off() })
  await hub.subscribe(1, () => { calls++ })
  await hub.publish([1])
  await hub.publish([1])
  t.equal(calls, 3)
})
