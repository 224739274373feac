/**
 * SSRF-safe HTTP fetching for everything that fetches URLs on behalf of users or plugins
 * (the preview service, the skill host's egress).
 *
 * - only `http:` and `https:`; userinfo is stripped; `Cookie` is never sent, `Authorization`
 *   only when the caller opts in and never across origins;
 * - every address is checked when the socket connects (an undici `Agent` whose connector checks IP
 *   literals and whose DNS `lookup` checks every resolved address), so a name that resolves to a
 *   public address for a pre-check and to a private one at connect time (DNS rebinding) is refused;
 * - only public unicast addresses are reachable: private, loopback, link-local, CGNAT, multicast,
 *   unspecified, broadcast, reserved, documentation, benchmarking, IPv4-mapped / -compatible /
 *   -translated IPv6 (unwrapped and re-checked), 6to4 and NAT64 with a non-public embedded IPv4,
 *   Teredo, ULA and everything outside 2000::/3 are refused;
 * - redirects are followed by hand (at most `maxRedirects`), each hop re-checked;
 * - byte cap (checked while streaming, after decompression) and a total time cap.
 *
 * An operator can name internal origins (`host:port`) that may resolve to private addresses.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import ipaddr from "ipaddr.js"
import * as NodeDns from "node:dns"
import * as NodeNet from "node:net"
import type * as NodeStream from "node:stream"
import * as NodeZlib from "node:zlib"
import { Agent, buildConnector, request as undiciRequest } from "undici"

/** Why a fetch was refused or failed. */
export class SafeFetchError extends Schema.TaggedError<SafeFetchError>()("SafeFetchError", {
  reason: Schema.Literal(
    "blocked_scheme",
    "blocked_address",
    "host_not_allowed",
    "too_many_redirects",
    "too_large",
    "timeout",
    "network",
    "bad_url"
  ),
  url: Schema.String,
  message: Schema.String
}) {}

/** Options of one fetch. */
export interface SafeFetchOptions {
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly body?: Uint8Array | string
  /** Cap on the (decompressed) body; default 10 MiB. */
  readonly maxBytes?: number
  /** Cap on the whole fetch, redirects and body included; default 10 s. */
  readonly timeoutMs?: number
  /** Default 5. */
  readonly maxRedirects?: number
  /** Operator allowlist of `host:port` origins that may resolve to private addresses. */
  readonly allowedPrivateHosts?: ReadonlyArray<string>
  /** Extra policy, e.g. a skill's allowedHosts globs, checked on every hop. */
  readonly hostAllowed?: (hostname: string) => boolean
  /** Send a caller-supplied `Authorization` header (to the first origin only; dropped on cross-origin redirects). */
  readonly allowAuthorization?: boolean
}

/** A fully read response. */
export interface SafeResponse {
  readonly url: string
  readonly status: number
  readonly headers: Headers
  readonly body: Uint8Array
}

/** A response whose body is read as a stream (the byte and time caps still apply). */
export interface SafeStreamResponse {
  readonly url: string
  readonly status: number
  readonly headers: Headers
  readonly body: Stream.Stream<Uint8Array, SafeFetchError>
}

/** One resolved address. */
export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** Name resolution (the system's by default; tests and `check-url --resolve` substitute their own). */
export type Resolver = (hostname: string) => Promise<ReadonlyArray<ResolvedAddress>>

/** The verdict on one address. */
export type AddressVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string }

/** The verdict of `checkUrl`. */
export type CheckResult = { readonly allow: true } | { readonly allow: false; readonly reason: string }

const DEFAULT_MAX_BYTES = 10 * 1024 * 1024
const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_MAX_REDIRECTS = 5
const DEFAULT_USER_AGENT = "Mozilla/5.0 (compatible; TroupePreview/1.0; +https://github.com/troupe)"

// ---------------------------------------------------------------------------------------------
// Address policy

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3") as [ipaddr.IPv6, number]

const embeddedV4 = (v6: ipaddr.IPv6, offsetParts: number): ipaddr.IPv4 => {
  const p = v6.parts
  const hi = p[offsetParts]!
  const lo = p[offsetParts + 1]!
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff])
}

const checkV4 = (v4: ipaddr.IPv4, shown: string): AddressVerdict => {
  const range = v4.range()
  return range === "unicast" ? { ok: true } : { ok: false, reason: `${shown} is ${range}` }
}

const checkParsed = (parsed: ipaddr.IPv4 | ipaddr.IPv6, shown: string): AddressVerdict => {
  if (parsed.kind() === "ipv4") return checkV4(parsed as ipaddr.IPv4, shown)
  const v6 = parsed as ipaddr.IPv6
  if (v6.zoneId) return { ok: false, reason: `${shown} has a zone id` }
  const range = v6.range()
  switch (range) {
    case "ipv4Mapped":
    case "rfc6145": {
      const inner = checkV4(embeddedV4(v6, 6), shown)
      return inner.ok ? { ok: false, reason: `${shown} is an IPv4-mapped address` } : inner
    }
    case "rfc6052": {
      // NAT64 well-known prefix 64:ff9b::/96 carries a v4 address: allow only a public one.
      const p = v6.parts
      if (p[0] === 0x64 && p[1] === 0xff9b && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) {
        return checkV4(embeddedV4(v6, 6), `${shown} (NAT64 of ${embeddedV4(v6, 6).toString()})`)
      }
      return { ok: false, reason: `${shown} is a local-use NAT64 address` }
    }
    case "6to4":
      return checkV4(embeddedV4(v6, 1), `${shown} (6to4 of ${embeddedV4(v6, 1).toString()})`)
    case "unicast":
      break
    default:
      return { ok: false, reason: `${shown} is ${range}` }
  }
  // IPv4-compatible ::/96 (ipaddr.js calls ::127.0.0.1 unicast) and anything outside global unicast.
  if (v6.parts.slice(0, 6).every((x) => x === 0)) return { ok: false, reason: `${shown} is an IPv4-compatible address` }
  if (!v6.match(GLOBAL_UNICAST_V6)) return { ok: false, reason: `${shown} is reserved` }
  return { ok: true }
}

/** Is this IP address (v4 or v6, no brackets) a public unicast address? */
export const checkAddress = (address: string): AddressVerdict => {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address
  if (!NodeNet.isIP(bare.split("%")[0]!)) return { ok: false, reason: `${address} is not an IP address` }
  let parsed: ipaddr.IPv4 | ipaddr.IPv6
  try {
    parsed = ipaddr.parse(bare)
  } catch {
    return { ok: false, reason: `${address} is not an IP address` }
  }
  return checkParsed(parsed, bare)
}

// ---------------------------------------------------------------------------------------------
// Host policy

const defaultPort = (protocol: string) => (protocol === "https:" ? 443 : 80)

/** `host:port` as used in the operator allowlist (IPv6 hosts bracketed, lower case). */
export const originKey = (hostname: string, port: number): string => {
  const bare = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname
  const host = NodeNet.isIPv6(bare) ? `[${ipaddr.parse(bare).toString()}]` : bare.toLowerCase().replace(/\.$/, "")
  return `${host}:${port}`
}

/** Normalise an allowlist entry (`host:port`, `[v6]:port`); `undefined` when malformed. */
export const parseAllowlistEntry = (entry: string): string | undefined => {
  const trimmed = entry.trim()
  if (trimmed.length === 0) return undefined
  let url: URL
  try {
    url = new URL(`http://${trimmed}`)
  } catch {
    return undefined
  }
  if (url.port === "" && !/:80$/.test(trimmed)) return undefined
  if (url.pathname !== "/" || url.search !== "" || url.username !== "" || url.password !== "") return undefined
  return originKey(url.hostname, url.port === "" ? 80 : Number(url.port))
}

const allowlistSet = (entries: ReadonlyArray<string> | undefined): ReadonlySet<string> =>
  new Set((entries ?? []).map((e) => parseAllowlistEntry(e)).filter((e): e is string => e !== undefined))

const systemResolver: Resolver = (hostname) =>
  NodeDns.promises.lookup(hostname, { all: true, verbatim: true }).then((xs) =>
    xs.map((x) => ({ address: x.address, family: x.family === 6 ? 6 as const : 4 as const }))
  )

/** A refusal raised inside the connector; mapped to `blocked_address`. */
class BlockedAddress extends Error {
  readonly code = "ERR_TROUPE_BLOCKED_ADDRESS"
}

/**
 * Resolve a name and check every address. Refuses when any address is not public (a name with one
 * private answer among public ones is suspicious and would otherwise be reachable by retries).
 */
const resolveChecked = async (
  hostname: string,
  resolver: Resolver
): Promise<{ readonly ok: true; readonly addresses: ReadonlyArray<ResolvedAddress> } | { readonly ok: false; readonly reason: string; readonly blocked: boolean }> => {
  let addresses: ReadonlyArray<ResolvedAddress>
  try {
    addresses = await resolver(hostname)
  } catch (e) {
    return { ok: false, blocked: false, reason: `${hostname} does not resolve (${(e as { code?: string }).code ?? String(e)})` }
  }
  if (addresses.length === 0) return { ok: false, blocked: false, reason: `${hostname} does not resolve` }
  for (const a of addresses) {
    const verdict = checkAddress(a.address)
    if (!verdict.ok) return { ok: false, blocked: true, reason: `${hostname} resolves to ${verdict.reason}` }
  }
  return { ok: true, addresses }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | ReadonlyArray<NodeDns.LookupAddress>, family?: number) => void

/** A `net.connect` lookup that resolves with `resolver` and refuses non-public answers. */
const guardedLookup = (resolver: Resolver, guard: boolean) =>
(hostname: string, options: NodeDns.LookupOptions, callback: LookupCallback): void => {
  const run = async () => {
    if (guard) {
      const checked = await resolveChecked(hostname, resolver)
      if (!checked.ok) {
        if (checked.blocked) throw new BlockedAddress(checked.reason)
        throw Object.assign(new Error(checked.reason), { code: "ENOTFOUND" })
      }
      return checked.addresses
    }
    return resolver(hostname)
  }
  run().then(
    (all) => {
      const wanted = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all
      if (wanted.length === 0) return callback(Object.assign(new Error(`${hostname} has no address of the requested family`), { code: "ENOTFOUND" }), "")
      if (options.all) return callback(null, wanted.map((a) => ({ address: a.address, family: a.family })))
      return callback(null, wanted[0]!.address, wanted[0]!.family)
    },
    (e: NodeJS.ErrnoException) => callback(e, "")
  )
}

/** The connection policy: what may be connected to. One undici `Agent` per policy. */
interface Policy {
  readonly allowlist: ReadonlySet<string>
  readonly resolver: Resolver
  readonly agent: Agent
}

const makeAgent = (allowlist: ReadonlySet<string>, resolver: Resolver): Agent => {
  const guarded = buildConnector({ lookup: guardedLookup(resolver, true), timeout: 10_000 } as buildConnector.BuildOptions)
  const operator = buildConnector({ lookup: guardedLookup(resolver, false), timeout: 10_000 } as buildConnector.BuildOptions)
  const connect: buildConnector.connector = (opts, callback) => {
    const port = Number(opts.port) || defaultPort(opts.protocol)
    if (allowlist.has(originKey(opts.hostname, port))) return operator(opts, callback)
    if (NodeNet.isIP(opts.hostname)) {
      const verdict = checkAddress(opts.hostname)
      if (!verdict.ok) {
        queueMicrotask(() => callback(new BlockedAddress(verdict.reason), null))
        return
      }
    }
    return guarded(opts, callback)
  }
  return new Agent({ connect, keepAliveTimeout: 4_000, keepAliveMaxTimeout: 30_000, connections: 64 })
}

const policyCache = new Map<string, Policy>()

const policyFor = (allowedPrivateHosts: ReadonlyArray<string> | undefined, resolver?: Resolver): Policy => {
  const allowlist = allowlistSet(allowedPrivateHosts)
  if (resolver) return { allowlist, resolver, agent: makeAgent(allowlist, resolver) }
  const key = [...allowlist].sort().join(",")
  let policy = policyCache.get(key)
  if (!policy) {
    policy = { allowlist, resolver: systemResolver, agent: makeAgent(allowlist, systemResolver) }
    policyCache.set(key, policy)
  }
  return policy
}

// ---------------------------------------------------------------------------------------------
// The checks shared by `checkUrl` and every hop of a fetch

type HopCheck =
  | { readonly ok: true; readonly url: URL; readonly port: number; readonly operatorAllowed: boolean }
  | { readonly ok: false; readonly reason: SafeFetchError["reason"]; readonly message: string }

const checkHop = (raw: string | URL, policy: Pick<Policy, "allowlist">, hostAllowed?: (hostname: string) => boolean): HopCheck => {
  let url: URL
  try {
    url = typeof raw === "string" ? new URL(raw) : new URL(raw.href)
  } catch {
    return { ok: false, reason: "bad_url", message: "not a valid absolute URL" }
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, reason: "blocked_scheme", message: `scheme ${url.protocol.replace(/:$/, "")} is not allowed (http and https only)` }
  }
  if (url.hostname === "") return { ok: false, reason: "bad_url", message: "URL has no host" }
  // an absolute name (`example.com.`) is the same host as without its dot: every check below (the
  // allowlists, single-label names, the resolver) and the request itself see the ordinary name
  if (url.hostname.endsWith(".")) {
    const name = url.hostname.replace(/\.+$/, "")
    if (name === "") return { ok: false, reason: "bad_url", message: "URL has no host" }
    url.hostname = name
  }
  url.username = ""
  url.password = ""
  url.hash = ""
  const port = url.port === "" ? defaultPort(url.protocol) : Number(url.port)
  const bare = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname
  if (hostAllowed && !hostAllowed(bare)) return { ok: false, reason: "host_not_allowed", message: `host ${bare} is not allowed` }
  const operatorAllowed = policy.allowlist.has(originKey(url.hostname, port))
  if (!operatorAllowed && NodeNet.isIP(bare)) {
    const verdict = checkAddress(bare)
    if (!verdict.ok) return { ok: false, reason: "blocked_address", message: verdict.reason }
  }
  if (!operatorAllowed && !NodeNet.isIP(bare) && !bare.includes(".")) {
    // Single-label names (localhost, intranet hosts) are resolved by the search domain: refuse early.
    return { ok: false, reason: "blocked_address", message: `single-label host ${bare} is not allowed` }
  }
  return { ok: true, url, port, operatorAllowed }
}

/**
 * Would `url` be fetched? The same checks as `safeFetch`'s (scheme, host policy, address ranges,
 * operator allowlist); names are resolved (with `resolve` overriding the system resolver for the
 * names it lists) and every address checked. Redirects are not followed.
 */
export const checkUrl = (
  url: string,
  options: { readonly allowedPrivateHosts?: ReadonlyArray<string>; readonly resolve?: Record<string, ReadonlyArray<string>>; readonly resolver?: Resolver } = {}
): Effect.Effect<CheckResult> =>
  Effect.promise(async (): Promise<CheckResult> => {
    const overrides = options.resolve ?? {}
    const resolver: Resolver = options.resolver ?? (async (hostname) => {
      const listed = overrides[hostname.toLowerCase()] ?? overrides[hostname]
      if (listed) return listed.map((address) => ({ address, family: NodeNet.isIPv6(address) ? 6 as const : 4 as const }))
      return systemResolver(hostname)
    })
    const policy = { allowlist: allowlistSet(options.allowedPrivateHosts) }
    const hop = checkHop(url, policy)
    if (!hop.ok) return { allow: false, reason: `${hop.reason}: ${hop.message}` }
    if (hop.operatorAllowed) return { allow: true }
    const bare = hop.url.hostname.startsWith("[") ? hop.url.hostname.slice(1, -1) : hop.url.hostname
    if (NodeNet.isIP(bare)) return { allow: true }
    const checked = await resolveChecked(bare, resolver)
    if (checked.ok) return { allow: true }
    return { allow: false, reason: `${checked.blocked ? "blocked_address" : "network"}: ${checked.reason}` }
  })

// ---------------------------------------------------------------------------------------------
// Fetching

const FORBIDDEN_HEADERS = new Set([
  "cookie",
  "cookie2",
  "proxy-authorization",
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "accept-encoding"
])

const requestHeaders = (given: Record<string, string> | undefined, includeAuthorization: boolean): Record<string, string> => {
  const headers: Record<string, string> = { "user-agent": DEFAULT_USER_AGENT, accept: "*/*", "accept-encoding": "gzip, deflate, br" }
  for (const [name, value] of Object.entries(given ?? {})) {
    const lower = name.toLowerCase()
    if (FORBIDDEN_HEADERS.has(lower)) continue
    if (lower === "authorization" && !includeAuthorization) continue
    headers[lower] = value
  }
  return headers
}

const toHeaders = (raw: Record<string, string | Array<string> | undefined>): Headers => {
  const headers = new Headers()
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue
    if (Array.isArray(value)) for (const v of value) headers.append(name, v)
    else headers.append(name, value)
  }
  return headers
}

const findCause = (e: unknown, depth = 0): unknown => {
  if (depth > 5 || typeof e !== "object" || e === null) return undefined
  if (e instanceof BlockedAddress) return e
  return findCause((e as { cause?: unknown }).cause, depth + 1)
}

const describe = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    const cause = (e as { cause?: unknown }).cause
    const inner = cause instanceof Error ? `: ${cause.message}` : ""
    return `${typeof code === "string" ? `${code} ` : ""}${e.message}${inner}`.trim()
  }
  return String(e)
}

const TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ETIMEDOUT"])

/** Map anything thrown while fetching to a `SafeFetchError`. */
const toError = (url: string, signal: AbortSignal | undefined, timedOut: () => boolean) => (e: unknown): SafeFetchError => {
  if (e instanceof SafeFetchError) return e
  const blocked = findCause(e)
  if (blocked instanceof BlockedAddress) return new SafeFetchError({ reason: "blocked_address", url, message: blocked.message })
  if (timedOut() || TIMEOUT_CODES.has(String((e as { code?: unknown }).code))) {
    return new SafeFetchError({ reason: "timeout", url, message: "timed out" })
  }
  if (signal?.aborted) return new SafeFetchError({ reason: "network", url, message: "aborted" })
  return new SafeFetchError({ reason: "network", url, message: describe(e) })
}

interface OpenResponse {
  readonly url: string
  readonly status: number
  readonly headers: Headers
  readonly body: NodeStream.Readable
}

const decoded = (body: NodeStream.Readable, encoding: string | null): NodeStream.Readable => {
  const codings = (encoding ?? "").split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0 && s !== "identity")
  if (codings.length > 2) throw new Error(`too many content-encodings: ${codings.length}`)
  let stream = body
  for (const coding of codings.reverse()) {
    const decoder = coding === "gzip" || coding === "x-gzip"
      ? NodeZlib.createGunzip()
      : coding === "deflate"
      ? NodeZlib.createInflate()
      : coding === "br"
      ? NodeZlib.createBrotliDecompress()
      : undefined
    if (!decoder) throw new Error(`unsupported content-encoding ${coding}`)
    const source = stream
    source.on("error", (e) => decoder.destroy(e))
    decoder.on("close", () => discard(source))
    stream = source.pipe(decoder)
  }
  return stream
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])

const noop = () => {}

/** Close a body we will not read (undici reports the abort as an error event). */
const discard = (stream: NodeStream.Readable) => {
  stream.on("error", noop)
  stream.destroy()
}

/** Follow hops by hand until a non-redirect response; the body is an open stream. */
const open = async (
  startUrl: string,
  options: SafeFetchOptions,
  policy: Policy,
  signal: AbortSignal
): Promise<OpenResponse> => {
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS
  let method = (options.method ?? "GET").toUpperCase()
  let body: Uint8Array | string | undefined = options.body
  let current: string | URL = startUrl
  let firstOrigin: string | undefined
  for (let hop = 0;; hop++) {
    const checked = checkHop(current, policy, options.hostAllowed)
    const shown = typeof current === "string" ? current : current.href
    if (!checked.ok) throw new SafeFetchError({ reason: checked.reason, url: shown, message: checked.message })
    const url = checked.url
    firstOrigin ??= url.origin
    const headers = requestHeaders(options.headers, options.allowAuthorization === true && url.origin === firstOrigin)
    const response = await undiciRequest(url, {
      method: method as "GET",
      headers,
      body: body === undefined || method === "GET" || method === "HEAD" ? null : body,
      dispatcher: policy.agent,
      signal,
      headersTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      bodyTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    })
    const location = response.headers["location"]
    if (REDIRECTS.has(response.statusCode) && typeof location === "string" && location.length > 0) {
      discard(response.body)
      if (hop >= maxRedirects) {
        throw new SafeFetchError({ reason: "too_many_redirects", url: url.href, message: `more than ${maxRedirects} redirects` })
      }
      let next: URL
      try {
        next = new URL(location, url)
      } catch {
        throw new SafeFetchError({ reason: "bad_url", url: url.href, message: `redirect to an invalid URL` })
      }
      if (response.statusCode === 303 || ((response.statusCode === 301 || response.statusCode === 302) && method === "POST")) {
        method = method === "HEAD" ? "HEAD" : "GET"
        body = undefined
      }
      current = next
      continue
    }
    const responseHeaders = toHeaders(response.headers)
    const contentEncoding = responseHeaders.get("content-encoding")
    let stream: NodeStream.Readable
    try {
      stream = method === "HEAD" ? response.body : decoded(response.body, contentEncoding)
    } catch (e) {
      discard(response.body)
      throw new SafeFetchError({ reason: "network", url: url.href, message: describe(e) })
    }
    if (contentEncoding) {
      responseHeaders.delete("content-encoding")
      responseHeaders.delete("content-length")
    }
    return { url: url.href, status: response.statusCode, headers: responseHeaders, body: stream }
  }
}

/** A deadline shared by all hops and the body. */
const deadline = (timeoutMs: number) => {
  const controller = new AbortController()
  let fired = false
  const timer = setTimeout(() => {
    fired = true
    controller.abort(new Error("timeout"))
  }, timeoutMs)
  return { signal: controller.signal, timedOut: () => fired, clear: () => clearTimeout(timer) }
}

const tooLarge = (url: string, maxBytes: number) =>
  new SafeFetchError({ reason: "too_large", url, message: `response body exceeds ${maxBytes} bytes` })

const declaredTooLarge = (response: OpenResponse, maxBytes: number): boolean => {
  const length = Number(response.headers.get("content-length") ?? "NaN")
  return Number.isFinite(length) && length > maxBytes
}

/** Testing and tools: a fetcher with its own resolver (never exposed to users). */
export interface SafeFetcher {
  readonly safeFetch: (url: string, options?: SafeFetchOptions) => Effect.Effect<SafeResponse, SafeFetchError>
  readonly safeFetchStream: (url: string, options?: SafeFetchOptions) => Effect.Effect<SafeStreamResponse, SafeFetchError, Scope.Scope>
}

/** Build a fetcher; the default one uses the system resolver. */
export const makeFetcher = (resolver?: Resolver): SafeFetcher => {
  const policies = new Map<string, Policy>()
  const policyOf = (allowed: ReadonlyArray<string> | undefined): Policy => {
    if (!resolver) return policyFor(allowed)
    const key = [...allowlistSet(allowed)].sort().join(",")
    let p = policies.get(key)
    if (!p) {
      p = policyFor(allowed, resolver)
      policies.set(key, p)
    }
    return p
  }

  const acquire = (url: string, options: SafeFetchOptions) =>
    Effect.acquireRelease(
      Effect.sync(() => deadline(options.timeoutMs ?? DEFAULT_TIMEOUT_MS)),
      (d) => Effect.sync(d.clear)
    ).pipe(
      Effect.flatMap((d) =>
        Effect.acquireRelease(
          Effect.tryPromise({
            try: (interrupt) => open(url, options, policyOf(options.allowedPrivateHosts), AbortSignal.any([d.signal, interrupt])),
            catch: toError(url, d.signal, d.timedOut)
          }),
          (r) => Effect.sync(() => discard(r.body))
        ).pipe(Effect.map((response) => ({ response, d })))
      )
    )

  const safeFetchStream = (url: string, options: SafeFetchOptions = {}) =>
    Effect.gen(function*() {
      const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
      const { d, response } = yield* acquire(url, options)
      if (declaredTooLarge(response, maxBytes)) return yield* Effect.fail(tooLarge(response.url, maxBytes))
      let seen = 0
      const body = Stream.fromAsyncIterable(response.body as AsyncIterable<Uint8Array>, toError(response.url, d.signal, d.timedOut)).pipe(
        Stream.mapEffect((chunk) => {
          seen += chunk.byteLength
          return seen > maxBytes ? Effect.fail(tooLarge(response.url, maxBytes)) : Effect.succeed(chunk)
        })
      )
      return { url: response.url, status: response.status, headers: response.headers, body } satisfies SafeStreamResponse
    })

  const safeFetch = (url: string, options: SafeFetchOptions = {}): Effect.Effect<SafeResponse, SafeFetchError> =>
    Effect.scoped(
      Effect.gen(function*() {
        const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
        const { d, response } = yield* acquire(url, options)
        if (declaredTooLarge(response, maxBytes)) return yield* Effect.fail(tooLarge(response.url, maxBytes))
        const body = yield* Effect.tryPromise({
          try: () => readAll(response.body, maxBytes, response.url),
          catch: toError(response.url, d.signal, d.timedOut)
        })
        return { url: response.url, status: response.status, headers: response.headers, body }
      })
    )

  return { safeFetch, safeFetchStream }
}

const readAll = async (body: NodeStream.Readable, maxBytes: number, url: string): Promise<Uint8Array> => {
  const chunks: Array<Uint8Array> = []
  let total = 0
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength
    if (total > maxBytes) {
      discard(body)
      throw tooLarge(url, maxBytes)
    }
    chunks.push(chunk)
  }
  const out = new Uint8Array(total)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.byteLength
  }
  return out
}

const defaultFetcher = makeFetcher()

/** Fetch a URL safely and read the whole body (up to `maxBytes`). Non-2xx statuses are returned, not failed. */
export const safeFetch: (url: string, options?: SafeFetchOptions) => Effect.Effect<SafeResponse, SafeFetchError> = defaultFetcher.safeFetch

/** Fetch a URL safely and stream the body; the byte cap fails the stream as soon as it is exceeded. */
export const safeFetchStream: (url: string, options?: SafeFetchOptions) => Effect.Effect<SafeStreamResponse, SafeFetchError, Scope.Scope> =
  defaultFetcher.safeFetchStream
