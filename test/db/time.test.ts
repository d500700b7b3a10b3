import fc from 'fast-check'
import t from 'tap'
import { iso, isoTimes, parseTime, parseUtcTime } from '../../db/time.js'

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

t.test('the original\'s time formats are read as UTC', async t => {
  t.equal(parseTime('2024-01-01 10:00:00'), Date.parse('2024-01-01T10:00:00Z'))
  t.equal(parseTime('2024-01-01 10:00'), Date.parse('2024-01-01T10:00:00Z'))
  t.equal(parseTime('2024-01-01 10:00:00.123456'), Date.parse('2024-01-01T10:00:00.123Z'))
  t.equal(parseTime('2024-01-01 10:00:00.123456+00:00'), Date.parse('2024-01-01T10:00:00.123Z'))
  t.equal(parseTime('2024-01-01T10:00:00-0130'), Date.parse('2024-01-01T11:30:00Z'))
  t.equal(parseTime('2024-01-01T10:00:00z'), Date.parse('2024-01-01T10:00:00Z'))
  t.equal(parseTime(1704103200), Date.parse('2024-01-01T10:00:00Z'), 'epoch seconds')
  t.equal(parseTime(1704103200000), Date.parse('2024-01-01T10:00:00Z'), 'epoch milliseconds')
  for (const bad of ['2024-02-30 10:00:00', '2024-13-01 10:00:00', '2024-01-01 24:00:00', '2024-01-01 10:60:00', '2024-01-01', 'soon', '', null, Number.NaN, {}]) {
    t.equal(parseTime(bad), undefined, String(bad))
  }
})

t.test('parseUtcTime: an operator\'s date is midnight UTC, a date and time as parseTime reads it', async t => {
  t.equal(parseUtcTime('2024-06-01'), Date.parse('2024-06-01T00:00:00Z'))
  t.equal(parseUtcTime('2024-06-01T12:30:00Z'), Date.parse('2024-06-01T12:30:00Z'))
  t.equal(parseUtcTime('2024-06-01 12:30'), Date.parse('2024-06-01T12:30:00Z'))
  for (const bad of ['2024-02-30', 'yesterday', '', '1717200000']) t.equal(parseUtcTime(bad), undefined, bad)
})

t.test('isoTimes turns each *_at epoch ms into ISO text and leaves every other field alone', async t => {
  const row = { id: 7, username: 'alice', created_at: 1_717_243_200_123, disabled_at: null, key_updated_at: 0, count_at_most: 'x', total: 1_717_243_200_123 }
  t.same(isoTimes(row), {
    id: 7,
    username: 'alice',
    created_at: '2024-06-01T12:00:00.123Z',
    disabled_at: null,
    key_updated_at: '1970-01-01T00:00:00.000Z',
    count_at_most: 'x',
    total: 1_717_243_200_123
  })
  t.equal(row.created_at, 1_717_243_200_123, 'the row itself is not changed')
})
