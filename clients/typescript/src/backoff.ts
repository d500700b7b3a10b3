export interface BackoffOptions {
  /** first delay, in milliseconds (default 500) */
  initialMs?: number
  /** longest delay, in milliseconds (default 30 000) */
  maxMs?: number
}

/**
 * The delay before try number `attempt` (1 for the first retry): exponential, capped, with jitter
 * (between half and all of it), so that clients cut off together do not all come back at once.
 */
export function backoffDelay (attempt: number, { initialMs = 500, maxMs = 30_000 }: BackoffOptions = {}): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return
  await new Promise<void>(resolve => {
    const done = (): void => { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve() }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done)
  })
}
