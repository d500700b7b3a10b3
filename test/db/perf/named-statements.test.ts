import t, { type Test } from 'tap'
import pg from 'pg'
import { preparesStatements } from '../../../db/perf/named-statements.js'
import { postgresUrl } from '../../helper.js'

// On PostgreSQL a query with parameters goes as a named prepared statement, parsed once a
// connection (db/perf/named-statements.ts).

const skip = postgresUrl === undefined && 'needs DATABASE_URL=postgres://...'

async function client (t: Test): Promise<pg.Client> {
  const connection = new pg.Client({ connectionString: postgresUrl })
  await connection.connect()
  t.teardown(async () => { await connection.end() })
  preparesStatements(connection)
  return connection
}

async function prepared (connection: pg.Client): Promise<string[]> {
  return (await connection.query('select statement from pg_prepared_statements order by statement')).rows.map(row => String(row.statement))
}

t.test('a query with parameters is prepared once under a name and answers with its own rows each time', { skip }, async t => {
  const connection = await client(t)
  const text = 'select $1::int * 2 as doubled, $2::text as label'
  const answers = await Promise.all([1, 2, 3].map(async n => await connection.query(text, [n, `n${n}`])))
  t.same(answers.map(answer => answer.rows), [[{ doubled: 2, label: 'n1' }], [{ doubled: 4, label: 'n2' }], [{ doubled: 6, label: 'n3' }]])
  t.equal(answers[0]?.rowCount, 1)
  t.equal(answers[0]?.command, 'SELECT')
  t.same(await prepared(connection), [text], 'one statement, under a name: the session keeps it')
  t.same((await connection.query('select 1 as one')).rows, [{ one: 1 }], 'a query without parameters goes as it is')
  t.same(await prepared(connection), [text])
})

t.test('a failing named query rejects with PostgreSQL\'s error and the connection goes on', { skip }, async t => {
  const connection = await client(t)
  await t.rejects(connection.query('select 1 / $1::int as n', [0]), { message: 'division by zero', code: '22012' })
  t.same((await connection.query('select 1 / $1::int as n', [1])).rows, [{ n: 1 }])
})

t.test('a query with a callback or a config object is passed on as it is', { skip }, async t => {
  const connection = await client(t)
  const rows = await new Promise((resolve, reject) => {
    connection.query('select $1::int as n', [5], (error: Error | null, result: pg.QueryResult) => { if (error !== null) reject(error); else resolve(result.rows) })
  })
  t.same(rows, [{ n: 5 }])
  t.same((await connection.query({ text: 'select $1::int as n', values: [6] })).rows, [{ n: 6 }])
  t.same(await prepared(connection), [], 'neither was named')
})
