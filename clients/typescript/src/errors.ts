/** An error answer of the server: its HTTP status and the catalogue `code` (`TOKEN_EXPIRED`, `CURSOR_EXPIRED`, ...). */
export class ApiError extends Error {
  override readonly name = 'ApiError'

  constructor (readonly status: number, readonly code: string | undefined, message: string, readonly retryAfterSeconds?: number) {
    super(message)
  }

  /** Worth another try later: the server was busy (429), failing (5xx) or answered nothing usable. */
  get transient (): boolean {
    return this.status === 429 || this.status >= 500
  }

  static from (response: Response, body: unknown): ApiError {
    const { code, message } = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown, message?: unknown }
    const retryAfter = Number(response.headers.get('retry-after'))
    return new ApiError(
      response.status,
      typeof code === 'string' ? code : undefined,
      typeof message === 'string' ? message : `HTTP ${response.status}`,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined
    )
  }
}

/** No answer at all (the connection failed or was cut), as opposed to an error answer. */
export function isNetworkError (error: unknown): boolean {
  return error instanceof TypeError || (error instanceof Error && error.name === 'NetworkError')
}
