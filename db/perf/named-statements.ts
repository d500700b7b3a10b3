import pg from 'pg'

// Kysely sends every query unnamed, so PostgreSQL parses and plans it anew each time. A
// query with parameters is sent as a named prepared statement instead, one name per SQL
// text (the same few texts come back all the time), which each connection parses once.
// Texts beyond the first MAX_NAMED (queries built with literals) go unnamed as before.
const MAX_NAMED = 500
const statementNames = new Map<string, string>()

function statementName (text: string): string | undefined {
  let name = statementNames.get(text)
  if (name === undefined && statementNames.size < MAX_NAMED) statementNames.set(text, name = `cc${statementNames.size}`)
  return name
}

type Callback = (error: Error | null, result: pg.QueryResult) => void

/** Makes a new client send each query with parameters as a named prepared statement. */
export function preparesStatements (client: pg.ClientBase): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  client.query = ((text: unknown, values?: unknown, ...rest: unknown[]) => {
    const name = typeof text === 'string' && Array.isArray(values) && values.length > 0 && rest.length === 0 ? statementName(text) : undefined
    if (name === undefined) return query(text, values, ...rest)
    // Built from the text, then named: pg copies a config object ({ name, text, values }) through
    // its property descriptors, 2.7 µs a query, more than the rest of pg's work on a small read.
    const named = new pg.Query(text as string, values as unknown[]) as pg.Query & { name: string, callback: Callback }
    named.name = name
    return new Promise<pg.QueryResult>((resolve, reject) => {
      named.callback = (error, result) => { if (error === null || error === undefined) resolve(result); else reject(error) }
      query(named)
    })
  }) as typeof client.query
}
