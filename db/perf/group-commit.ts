import { CompiledQuery, type Kysely, type Transaction } from 'kysely'
import { isPostgres } from '../dialect.js'
import type { Database } from '../schema.js'

// Group commit on SQLite. Each committed transaction appends every page it touched to the
// WAL: a message (its row, five indexes, two counters, two events and their indexes)
// writes about ten pages, and the commit costs more than the statements. The writes of the
// requests that arrive in one turn of the event loop are run together, in one transaction,
// and committed once; each caller hears back only after that commit, so a write that was
// answered is as durable as before. One write's failure must undo only that write, which a
// savepoint per write does; but SQLite copies each page a savepoint's write touches into
// its sub-journal (in memory, in 1 KiB pieces), and the savepoints and their copies were
// about a twentieth of the instructions SQLite spends on a send (bench/micro-send.ts). So a
// group first runs without them, and only when one of its writes fails is it rolled back
// and run again with a savepoint for each: a write's work may run twice, and must act only
// through its transaction. On PostgreSQL each write keeps a transaction of its own: its
// writers run in parallel on a pool, and locking their counters in one transaction would
// serialise them.

type Work<T> = (trx: Transaction<Database>) => Promise<T>

interface Pending {
  work: Work<unknown>
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

type Outcome = { ok: true, value: unknown } | { ok: false, error: unknown }

const SAVEPOINT = CompiledQuery.raw('savepoint grouped')
const ROLLBACK_TO_SAVEPOINT = CompiledQuery.raw('rollback to grouped')
const RELEASE_SAVEPOINT = CompiledQuery.raw('release grouped')

/** The most writes one transaction takes; the rest wait for the next. */
export const MAX_GROUP = 64

const committers = new WeakMap<Kysely<Database>, GroupCommit>()

/**
 * Runs `work` in a transaction: on SQLite grouped with the other writes of this turn of
 * the event loop; resolves after the commit. On SQLite `work` may run twice (see above): it
 * must act only through `trx`.
 */
export async function inGroupTransaction<T> (db: Kysely<Database>, work: Work<T>): Promise<T> {
  // inside a caller's transaction the work is simply part of it
  if (db.isTransaction) return await work(db as Transaction<Database>)
  if (isPostgres(db)) return await db.transaction().execute(work)
  return await committerOf(db).run(work)
}

/**
 * Holds back the writes of `db` that come through inGroupTransaction: resolves once the
 * group being committed (if any) has committed, and no other starts until the returned
 * function is called. Writes made meanwhile wait in the queue (nothing blocks the event
 * loop). The checkpointer uses it to copy the last pages of the log into the database file
 * with no commit in between, so that the next commit can start the log over (checkpointer.ts).
 * Nothing to hold on PostgreSQL.
 */
export async function holdGroupCommits (db: Kysely<Database>): Promise<() => void> {
  if (isPostgres(db)) return () => {}
  return await committerOf(db).hold()
}

/** Calls `observe` with the number of writes of each group committed on `db` (metrics); nothing on PostgreSQL. */
export function observeGroupCommits (db: Kysely<Database>, observe: (writes: number) => void): void {
  if (!isPostgres(db)) committerOf(db).observe = observe
}

function committerOf (db: Kysely<Database>): GroupCommit {
  let committer = committers.get(db)
  if (committer === undefined) committers.set(db, committer = new GroupCommit(db))
  return committer
}

class GroupCommit {
  readonly #db: Kysely<Database>
  #queue: Pending[] = []
  #scheduled = false
  #holds = 0
  // the group being committed, if any (settled: #flush settles every write itself)
  #flushing: Promise<void> = Promise.resolve()
  observe: ((writes: number) => void) | undefined

  constructor (db: Kysely<Database>) {
    this.#db = db
  }

  async run<T> (work: Work<T>): Promise<T> {
    return await new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject })
      this.#schedule()
    })
  }

  /** A flush at the next turn, unless one is scheduled already. */
  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    this.#flushSoon()
  }

  async hold (): Promise<() => void> {
    this.#holds++
    await this.#flushing
    let released = false
    return () => {
      if (released) return
      released = true
      this.#holds--
      if (this.#holds === 0 && this.#queue.length > 0) this.#schedule()
    }
  }

  /** Once the requests of this turn of the event loop have queued their writes. */
  #flushSoon (): void {
    setImmediate(() => {
      // held: the release schedules the flush
      if (this.#holds > 0) {
        this.#scheduled = false
        return
      }
      this.#flushing = this.#flush().catch(() => {}) // #flush settles every write itself
    })
  }

  async #flush (): Promise<void> {
    const group = this.#queue.splice(0, MAX_GROUP)
    try {
      const outcomes = await this.#together(group) ?? await this.#apart(group)
      this.observe?.(group.length)
      group.forEach((pending, index) => {
        const outcome = outcomes[index]
        if (outcome?.ok === true) pending.resolve(outcome.value)
        else pending.reject(outcome?.error ?? new Error('grouped write had no outcome'))
      })
    } catch (error) {
      // the commit itself failed: none of the group's writes stands
      for (const pending of group) pending.reject(error)
    } finally {
      if (this.#queue.length > 0) this.#flushSoon()
      else this.#scheduled = false
    }
  }

  /** The group's writes one after the other in one transaction; undefined (rolled back) when one of them failed. */
  async #together (group: Pending[]): Promise<Outcome[] | undefined> {
    let failed = false
    try {
      return await this.#db.transaction().execute(async trx => {
        const outcomes: Outcome[] = []
        for (const { work } of group) {
          try {
            outcomes.push({ ok: true, value: await work(trx) })
          } catch (error) {
            failed = true
            throw error
          }
        }
        return outcomes
      })
    } catch (error) {
      if (failed) return undefined
      throw error
    }
  }

  /** The group's writes in one transaction, each in a savepoint: a write that fails undoes only itself. */
  async #apart (group: Pending[]): Promise<Outcome[]> {
    return await this.#db.transaction().execute(async trx => {
      const outcomes: Outcome[] = []
      for (const { work } of group) {
        await trx.executeQuery(SAVEPOINT)
        try {
          outcomes.push({ ok: true, value: await work(trx) })
        } catch (error) {
          await trx.executeQuery(ROLLBACK_TO_SAVEPOINT)
          outcomes.push({ ok: false, error })
        }
        await trx.executeQuery(RELEASE_SAVEPOINT)
      }
      return outcomes
    })
  }
}
