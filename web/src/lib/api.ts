/**
 * The one way the app talks to the server: same-origin `fetch` with the session cookies, the
 * CSRF header on every request that changes state (the `troupe_csrf` cookie's value, as
 * docs/api.md asks), one transparent refresh when the access token expired, and every failure
 * turned into an `ApiError` whose `message` a person can read (never a raw JSON body).
 */

/** A failed request: `code` is the server's machine-readable code (or a local one: `network`, `timeout`, `bad_response`). */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly details: unknown
  readonly requestId: string | null
  constructor(status: number, code: string, message: string, details?: unknown, requestId?: string | null) {
    super(message)
    this.name = "ApiError"
    this.status = status
    this.code = code
    this.details = details
    this.requestId = requestId ?? null
  }

  /** Field problems of a 400 `invalid_request`: `{ "email": "must be an email address" }`. */
  get fieldErrors(): Record<string, string> {
    const issues = (this.details as { issues?: Array<{ path: string; message: string }> } | undefined)?.issues
    const out: Record<string, string> = {}
    for (const issue of issues ?? []) if (!(issue.path in out)) out[issue.path] = issue.message
    return out
  }

  /** Whether trying again later may work (the server or the network, not the request). */
  get retryable(): boolean {
    return this.code === "network" || this.code === "timeout" || this.status === 429 || this.status >= 500
  }
}

/** Messages for codes whose server message is written for developers, not for people. */
const friendly: Record<string, string> = {
  network: "Could not reach the server. Check your connection and try again.",
  timeout: "The server took too long to answer. Try again.",
  csrf_failed: "Your session needs refreshing: reload the page and try again.",
  unauthorized: "Please sign in.",
  token_expired: "Your session expired: please sign in again.",
  session_revoked: "You were signed out.",
  invalid_token: "Please sign in again.",
  invalid_credentials: "Wrong login or password.",
  totp_required: "Enter the code from your authenticator app (or a backup code).",
  invalid_totp: "That code is not right. Try the current code from your authenticator app, or a backup code.",
  email_not_verified: "Verify your email address first: enter the code we sent you.",
  invalid_code: "That code is wrong, expired or was tried too often. Ask for a new one.",
  insufficient_credits: "Not enough credits for this. See Credits for your balance.",
  spend_cap_exceeded: "This API key reached its spend cap.",
  rate_limited: "Too many requests. Wait a moment and try again.",
  turn_in_progress: "The mate is still answering. Wait for the reply or stop it first.",
  no_running_turn: "Nothing is running in this chat.",
  chat_not_found: "This chat does not exist or was deleted.",
  unavailable: "The server is busy or restarting. Try again in a moment.",
  internal_error: "Something went wrong on the server. Try again; if it keeps happening, tell the operator.",
  payload_too_large: "That is too long to send.",
  admin_only: "Only an administrator can do this.",
  invite_required: "Signing up on this server needs an invite code.",
  invite_invalid: "That invite code is not valid (wrong, used up or expired).",
  reset_token_used: "This reset link was used already (or a newer one was). Ask for a new link.",
  reset_token_expired: "This reset link expired (links work for 30 minutes). Ask for a new link.",
  reset_token_invalid: "This reset link is not valid: check that the whole link was opened, or ask for a new one.",
  sso_only: "This server signs you in through single sign-on only."
}

/** A readable message for any thrown value. */
export const messageOf = (error: unknown): string => {
  if (error instanceof ApiError) return error.message
  if (error instanceof Error && error.message) return error.message
  return "Something went wrong."
}

/** The value of a cookie readable by scripts. */
export const cookie = (name: string): string | undefined => {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=")
    if (k === name) return decodeURIComponent(v.join("="))
  }
  return undefined
}

const unsafe = (method: string) => method !== "GET" && method !== "HEAD"

/** Called when the session is gone for good (refresh failed): the app shows the sign-in page. */
let onSignedOut: (() => void) | undefined
export const setSignedOutHandler = (f: () => void) => {
  onSignedOut = f
}

let refreshing: Promise<boolean> | undefined

/** Rotate the session with the refresh cookie (one at a time); whether it worked. */
export const refreshSession = (): Promise<boolean> => {
  refreshing ??= (async () => {
    const csrf = cookie("troupe_csrf")
    if (!csrf) return false
    try {
      const res = await fetch("/v1/auth/refresh", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": csrf },
        body: "{}",
        credentials: "same-origin"
      })
      return res.ok
    } catch {
      return false
    }
  })().finally(() => {
    refreshing = undefined
  })
  return refreshing
}

const sessionCodes = new Set(["token_expired", "unauthorized", "invalid_token"])

export interface RequestOptions {
  /** JSON body. */
  body?: unknown
  /** A body sent as it is (a `FormData` of files); its content type is the browser's. */
  rawBody?: FormData
  /** Milliseconds before giving up (default 30 s). */
  timeoutMs?: number
  /** Do not try to refresh the session on a 401 (the auth routes themselves). */
  noRefresh?: boolean
  signal?: AbortSignal
}

const toError = async (res: Response): Promise<ApiError> => {
  const requestId = res.headers.get("x-request-id")
  let body: unknown
  try {
    body = await res.json()
  } catch {
    body = undefined
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error
  if (error && typeof error.code === "string") {
    const serverMessage = typeof error.message === "string" ? error.message : ""
    const message = error.code === "invalid_request" && serverMessage ? serverMessage : (friendly[error.code] ?? (serverMessage || `Request failed (${res.status}).`))
    return new ApiError(res.status, error.code, message, error.details, requestId)
  }
  if (res.status >= 500) return new ApiError(res.status, "unavailable", `The server answered with an error (${res.status}). Try again in a moment.`, undefined, requestId)
  return new ApiError(res.status, "bad_response", `Unexpected answer from the server (${res.status}).`, undefined, requestId)
}

/** Call the API; resolves with the decoded JSON body (undefined for 204), rejects with `ApiError`. */
export async function api<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const attempt = async (): Promise<Response> => {
    const headers: Record<string, string> = { accept: "application/json" }
    if (options.body !== undefined && options.rawBody === undefined) headers["content-type"] = "application/json"
    if (unsafe(method)) {
      const csrf = cookie("troupe_csrf")
      if (csrf) headers["x-csrf-token"] = csrf
    }
    const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000)
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
    try {
      return await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        ...(options.rawBody !== undefined ? { body: options.rawBody } : options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal
      })
    } catch (e) {
      if (options.signal?.aborted) throw e
      if (timeout.aborted) throw new ApiError(0, "timeout", friendly.timeout!)
      throw new ApiError(0, "network", friendly.network!)
    }
  }
  let res = await attempt()
  if (res.status === 401 && !options.noRefresh) {
    const err = await toError(res.clone())
    if (sessionCodes.has(err.code)) {
      if (await refreshSession()) res = await attempt()
      else {
        onSignedOut?.()
        throw err
      }
    }
  }
  if (!res.ok) throw await toError(res)
  if (res.status === 204) return undefined as T
  try {
    return (await res.json()) as T
  } catch {
    throw new ApiError(res.status, "bad_response", "The server's answer could not be read. Try again.")
  }
}

export const get = <T>(path: string, options?: RequestOptions) => api<T>("GET", path, options)
export const post = <T>(path: string, body?: unknown, options?: RequestOptions) => api<T>("POST", path, { ...options, body: body ?? {} })
export const patch = <T>(path: string, body: unknown, options?: RequestOptions) => api<T>("PATCH", path, { ...options, body })
export const del = <T = void>(path: string, options?: RequestOptions) => api<T>("DELETE", path, options)

/** `?a=1&b=2` of the defined values. */
export const query = (params: Record<string, string | number | undefined | null>): string => {
  const entries = Object.entries(params).filter((e): e is [string, string | number] => e[1] !== undefined && e[1] !== null)
  return entries.length === 0 ? "" : "?" + new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()
}
