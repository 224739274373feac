/**
 * The host functions a plugin instance gets: our `kv_get`, `kv_set`, `secret_get` (in
 * `extism:host/user`), the kernel's HTTP functions replaced by ones that go through the host's
 * egress policy, and any functions an embedder adds. They run on the serving thread while the
 * plugin waits in its worker, and they never throw: a failure returns the zero of the import's
 * result type (the Extism SDK hangs the next call after a throwing host function). The one
 * exception is an instance already discarded (timed out): then throwing is what makes the SDK
 * drop the dead worker instead of waiting for it forever.
 */
import type { CallContext as ExtismCallContext } from "@extism/extism"
import type * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import picomatch from "picomatch"
import type { HostFunctionName } from "../manifest/Manifest.ts"
import { EXTISM_ENV, EXTISM_USER } from "./Admission.ts"
import type { KvScope, KvStore } from "./KvStore.ts"
import type { FuncType } from "./Wasm.ts"

/** The context the Extism SDK passes to host functions. */
export type HostCallContext = ExtismCallContext

/** A host function an embedder provides (arguments and results as the SDK passes them). */
export type HostFunction = (
  context: HostCallContext,
  ...args: Array<bigint | number>
) => bigint | number | void | Promise<bigint | number | void>

/** Extra host functions by namespace and name. */
export type CustomFunctions = Readonly<Record<string, Readonly<Record<string, HostFunction>>>>

/** A fetch with the shape of `runtime/SafeFetch.ts`'s `safeFetch`. */
export type Egress = (
  url: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    readonly body?: Uint8Array | string
    readonly maxBytes?: number
    readonly timeoutMs?: number
    readonly maxRedirects?: number
    readonly allowedPrivateHosts?: ReadonlyArray<string>
    readonly hostAllowed?: (hostname: string) => boolean
  }
) => Effect.Effect<
  { readonly url: string; readonly status: number; readonly headers: Headers; readonly body: Uint8Array },
  { readonly reason: string; readonly url: string; readonly message: string }
>

/** Refusals of the egress policy (anything else is a network failure the plugin sees as a status). */
export const DENIAL_REASONS: ReadonlySet<string> = new Set(["blocked_scheme", "blocked_address", "host_not_allowed"])

/** An egress attempt the policy refused. */
export interface EgressDenial {
  readonly url: string
  readonly reason: string
  readonly message: string
}

/** What the host functions know about the call in progress on their instance. */
export interface CallState {
  readonly skill: string
  readonly scope: KvScope
  readonly secrets: Readonly<Record<string, string>>
  /** `performance.now()` at which the call times out. */
  readonly deadline: number
  egressDenied: EgressDenial | undefined
  memoryExceeded: string | undefined
  /** The last error the plugin logged (shown with a trap: an AssemblyScript abort logs its message). */
  lastErrorLog: string | undefined
  logsLeft: number
  httpStatus: number
  httpHeaders: Record<string, string> | null
}

/** How host functions see their instance. */
export interface InstanceHooks {
  readonly current: () => CallState | undefined
  readonly closed: () => boolean
  readonly enter: () => void
  readonly leave: () => void
  readonly warn: (message: string) => void
}

/** What the host functions of one plugin are built from. */
export interface HostFunctionEnv {
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<Exit.Exit<A, E>>
  readonly kv: KvStore["Type"]
  readonly egress: Egress
  readonly allowedHosts: ReadonlyArray<string>
  readonly allowedPrivateHosts: ReadonlyArray<string>
  readonly maxHttpResponseBytes: number
  readonly allowHttpResponseHeaders: boolean
  readonly granted: ReadonlyArray<HostFunctionName>
  readonly secretKeys: ReadonlySet<string>
  readonly custom: CustomFunctions
  /** Import signatures by `namespace::name`, for the zero result of a failed call. */
  readonly types: ReadonlyMap<string, FuncType>
}

/** A host-name matcher for `allowedHosts` globs (case-insensitive; `*` matches any host). */
export const hostMatcher = (globs: ReadonlyArray<string>): (hostname: string) => boolean => {
  if (globs.length === 0) return () => false
  const matchers = globs.map((g) => picomatch(g.toLowerCase(), { dot: true }))
  return (hostname) => {
    const host = hostname.toLowerCase().replace(/\.$/, "")
    return matchers.some((m) => m(host))
  }
}

const zeroOf = (type: FuncType | undefined): bigint | number | undefined => {
  const result = type?.results[0]
  if (result === undefined) return type ? undefined : 0n
  return result === "i64" ? 0n : 0
}

const encoder = new TextEncoder()

const stringRecord = (value: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (typeof v === "string") out[k] = v
      else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v)
    }
  }
  return out
}

const FAILURE_STATUS: Readonly<Record<string, number>> = {
  bad_url: 400,
  too_large: 413,
  too_many_redirects: 508,
  timeout: 504,
  network: 502
}

/** The functions object to hand to `createPlugin` for one instance. */
export const build = (env: HostFunctionEnv, hooks: InstanceHooks): Record<string, Record<string, HostFunction>> => {
  const guard = (id: string, fn: HostFunction): HostFunction => async (context, ...args) => {
    hooks.enter()
    try {
      const result = await fn(context, ...args)
      if (hooks.closed()) throw new Error("the plugin instance was discarded")
      return result
    } catch (e) {
      if (hooks.closed()) throw e
      hooks.warn(`host function ${id} failed: ${e instanceof Error ? e.message : String(e)}`)
      return zeroOf(env.types.get(id))
    } finally {
      hooks.leave()
    }
  }

  const hostAllowed = hostMatcher(env.allowedHosts)

  const httpRequest: HostFunction = async (context, requestAddress, bodyAddress) => {
    const state = hooks.current()
    if (!state) return 0n
    state.httpStatus = 0
    state.httpHeaders = null
    const raw = context.read(BigInt(requestAddress ?? 0))
    if (raw === null) return 0n
    let request: { url?: unknown; method?: unknown; headers?: unknown; header?: unknown }
    try {
      request = JSON.parse(raw.text())
    } catch {
      state.httpStatus = 400
      return context.store("http_request: the request is not JSON")
    }
    const url = typeof request.url === "string" ? request.url : ""
    const method = (typeof request.method === "string" ? request.method : "GET").toUpperCase()
    const headers = stringRecord(request.headers ?? request.header)
    const body = BigInt(bodyAddress ?? 0) === 0n || method === "GET" || method === "HEAD"
      ? undefined
      : context.read(BigInt(bodyAddress ?? 0))?.bytes()
    const remaining = Math.max(1, Math.floor(state.deadline - performance.now()))
    const exit = await env.run(env.egress(url, {
      method,
      headers,
      ...(body ? { body: body.slice() } : {}),
      maxBytes: env.maxHttpResponseBytes,
      timeoutMs: Math.min(remaining, 60_000),
      maxRedirects: 5,
      allowedPrivateHosts: env.allowedPrivateHosts,
      hostAllowed
    }))
    if (Exit.isSuccess(exit)) {
      const response = exit.value
      state.httpStatus = response.status
      if (env.allowHttpResponseHeaders) {
        const all: Record<string, string> = {}
        response.headers.forEach((value, key) => {
          all[key] = value
        })
        state.httpHeaders = all
      }
      return context.store(response.body)
    }
    const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    if (failure && DENIAL_REASONS.has(failure.reason)) {
      const message = `HTTP request to "${url}" is not allowed (${failure.reason}: ${failure.message})`
      state.egressDenied ??= { url, reason: failure.reason, message }
      state.httpStatus = 403
      return context.store(message)
    }
    state.httpStatus = failure ? (FAILURE_STATUS[failure.reason] ?? 502) : 502
    const message = failure ? `HTTP request to "${url}" failed (${failure.reason}: ${failure.message})` : `HTTP request to "${url}" failed`
    hooks.warn(message)
    return context.store(message)
  }

  const kernel: Record<string, HostFunction> = {}
  const http: Record<string, HostFunction> = {
    http_request: guard(`${EXTISM_ENV}::http_request`, httpRequest),
    http_status_code: guard(`${EXTISM_ENV}::http_status_code`, () => hooks.current()?.httpStatus ?? 0),
    http_headers: guard(`${EXTISM_ENV}::http_headers`, (context) => {
      const headers = hooks.current()?.httpHeaders
      return headers ? context.store(JSON.stringify(headers)) : 0n
    })
  }
  // The SDK assigns its own HTTP functions (with a throwing allowedHosts check) over these
  // names: accessors whose setters ignore the assignment keep ours.
  for (const [name, fn] of Object.entries(http)) {
    Object.defineProperty(kernel, name, { enumerable: true, configurable: false, get: () => fn, set: () => {} })
  }

  const user: Record<string, HostFunction> = {}
  const text = (context: HostCallContext, address: bigint | number | undefined): string | undefined => {
    const block = context.read(BigInt(address ?? 0))
    return block === null ? undefined : block.text()
  }
  if (env.granted.includes("kv_get")) {
    user["kv_get"] = guard(`${EXTISM_USER}::kv_get`, async (context, keyAddress) => {
      const state = hooks.current()
      const key = text(context, keyAddress)
      if (!state || key === undefined) return 0n
      const exit = await env.run(env.kv.get(state.scope, key))
      if (Exit.isFailure(exit)) {
        hooks.warn(`kv_get failed: ${exit.cause._tag === "Fail" ? exit.cause.error.message : "store error"}`)
        return 0n
      }
      return exit.value === undefined ? 0n : context.store(exit.value)
    })
  }
  if (env.granted.includes("kv_set")) {
    user["kv_set"] = guard(`${EXTISM_USER}::kv_set`, async (context, keyAddress, valueAddress) => {
      const state = hooks.current()
      const key = text(context, keyAddress)
      if (!state || key === undefined) return 1n
      const value = BigInt(valueAddress ?? 0) === 0n ? undefined : (context.read(BigInt(valueAddress ?? 0))?.bytes().slice() ?? new Uint8Array(0))
      const exit = await env.run(env.kv.set(state.scope, key, value))
      if (Exit.isSuccess(exit)) return 0n
      const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
      switch (error?.reason) {
        case "key_too_large":
          return 1n
        case "value_too_large":
          return 2n
        case "quota_exceeded":
          return 3n
        default:
          return 4n
      }
    })
  }
  if (env.granted.includes("secret_get")) {
    user["secret_get"] = guard(`${EXTISM_USER}::secret_get`, (context, nameAddress) => {
      const state = hooks.current()
      const name = text(context, nameAddress)
      if (!state || name === undefined || !env.secretKeys.has(name)) return 0n
      const value = state.secrets[name]
      return value === undefined ? 0n : context.store(encoder.encode(value))
    })
  }

  const functions: Record<string, Record<string, HostFunction>> = { [EXTISM_ENV]: kernel }
  if (Object.keys(user).length > 0) functions[EXTISM_USER] = user
  for (const [namespace, fns] of Object.entries(env.custom)) {
    const target = functions[namespace] ?? (functions[namespace] = {})
    for (const [name, fn] of Object.entries(fns)) {
      if (namespace === EXTISM_ENV) continue
      target[name] = guard(`${namespace}::${name}`, fn)
    }
  }
  return functions
}
