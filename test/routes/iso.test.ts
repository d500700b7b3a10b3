import fc from 'fast-check'
import t from 'tap'
import { iso } from '../../routes/schemas.js'

// iso() formats without a Date per call; it must agree with Date#toISOString everywhere.

t.test('iso agrees with Date#toISOString', async t => {
  const edges = [0, -1, 1, 999, 1000, 86_399_999, 86_400_000, -86_400_000, -86_400_001, 1_795_757_331_863,
    253_402_300_799_999, 253_402_300_800_000, -62_167_219_200_001, 8.64e15, -8.64e15, 1.5, -0.5]
  for (const ms of edges) t.equal(iso(ms), new Date(ms).toISOString(), String(ms))
  fc.assert(fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), ms => iso(ms) === new Date(ms).toISOString()), { numRuns: 20_000 })
  fc.assert(fc.property(fc.integer({ min: 1.7e12, max: 1.9e12 }), ms => iso(ms) === new Date(ms).toISOString()), { numRuns: 20_000 })
  t.throws(() => iso(NaN), RangeError)
  t.throws(() => iso(8.64e15 + 1), RangeError)
  t.throws(() => iso(Infinity), RangeError)
})
