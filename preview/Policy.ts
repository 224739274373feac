/**
 * Who may use the preview endpoints: per-IP rate limits, an optional API key, optional HMAC-signed
 * URLs, a Referer allowlist and CORS. Pure decisions over a request's parts, so the routes stay thin.
 *
 * - A request needs a valid key (`X-API-Key` or `Authorization: Bearer`), a valid signature
 *   (`sig`, optionally `expires`) or — embedded in `troupe start` — the signed-in session of the
 *   web app (its cookie or access token), unless the operator opted in to anonymous use
 *   (`PREVIEW_ANONYMOUS=true`, and no keys configured).
 * - With `PREVIEW_VALIDATE_REFERER`, a request without a valid API key needs a Referer whose origin
 *   is allowed (`https://app.example.com`, `app.example.com` or `*.example.com`).
 */
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeCrypto from "node:crypto"
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible"
import type { PreviewConfigShape } from "./Config.ts"

/** A refusal: HTTP status, machine-readable code, message and extra headers. */
export interface Refusal {
  readonly status: number
  readonly code: string
  readonly message: string
  readonly headers?: Record<string, string>
}

/** The parts of a request the policy looks at. */
export interface RequestParts {
  readonly method: string
  readonly url: URL
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly remoteAddress: string | undefined
}

const digest = (s: string) => NodeCrypto.createHash("sha256").update(s).digest()

/** Constant-time membership test of a presented API key. */
const keyMatches = (presented: string, keys: ReadonlyArray<Redacted.Redacted>): boolean => {
  const p = digest(presented)
  let ok = false
  for (const k of keys) ok = NodeCrypto.timingSafeEqual(p, digest(Redacted.value(k))) || ok
  return ok
}

/** The string a signature covers: the path and every query parameter but `sig`, sorted. */
export const canonicalQuery = (url: URL): string => {
  const params = [...url.searchParams.entries()].filter(([k]) => k !== "sig").sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
  return `${url.pathname}?${params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&")}`
}

/** Sign a preview URL (path + query, or absolute): appends `sig`. Add `expires` (unix seconds) before signing to bound it. */
export const signUrl = (pathAndQuery: string, key: string): string => {
  const url = new URL(pathAndQuery, "http://preview.invalid")
  url.searchParams.delete("sig")
  const sig = NodeCrypto.createHmac("sha256", key).update(canonicalQuery(url)).digest("base64url")
  url.searchParams.set("sig", sig)
  return /^https?:\/\//.test(pathAndQuery) ? url.href : `${url.pathname}${url.search}`
}

const signatureVerdict = (url: URL, key: Redacted.Redacted, nowSeconds: number): "valid" | "missing" | "invalid" | "expired" => {
  const sig = url.searchParams.get("sig")
  if (!sig) return "missing"
  const expected = NodeCrypto.createHmac("sha256", Redacted.value(key)).update(canonicalQuery(url)).digest()
  let presented: Buffer
  try {
    presented = Buffer.from(sig, "base64url")
  } catch {
    return "invalid"
  }
  if (presented.byteLength !== expected.byteLength || !NodeCrypto.timingSafeEqual(presented, expected)) return "invalid"
  const expires = url.searchParams.get("expires")
  if (expires !== null && (!/^\d+$/.test(expires) || Number(expires) < nowSeconds)) return "expired"
  return "valid"
}

/** Does a Referer's origin match an allowlist entry? */
export const refererAllowed = (referer: string, allowed: ReadonlyArray<string>): boolean => {
  let ref: URL
  try {
    ref = new URL(referer)
  } catch {
    return false
  }
  const host = ref.hostname.toLowerCase()
  return allowed.some((raw) => {
    const entry = raw.trim().toLowerCase()
    if (entry === "*") return true
    if (entry.includes("://")) {
      try {
        return new URL(entry).origin === ref.origin
      } catch {
        return false
      }
    }
    if (entry.startsWith("*.")) return host.endsWith(entry.slice(1)) && host.length > entry.length - 1
    return host === entry || `${host}:${ref.port}` === entry
  })
}

/** The client's IP (from `X-Forwarded-For` only behind a trusted proxy). */
export const clientIp = (parts: RequestParts, trustProxy: boolean): string => {
  if (trustProxy) {
    const forwarded = parts.headers["x-forwarded-for"]?.split(",")[0]?.trim()
    if (forwarded) return forwarded
  }
  return parts.remoteAddress ?? "unknown"
}

/** CORS headers for an answer to `origin` (empty when the origin is not allowed). */
export const corsHeaders = (origin: string | undefined, allowed: ReadonlyArray<string>): Record<string, string> => {
  if (allowed.includes("*")) return { "access-control-allow-origin": "*", "access-control-expose-headers": "etag, x-preview-cache" }
  if (origin && allowed.some((a) => a.replace(/\/$/, "").toLowerCase() === origin.toLowerCase())) {
    return { "access-control-allow-origin": origin, vary: "origin", "access-control-expose-headers": "etag, x-preview-cache" }
  }
  return { vary: "origin" }
}

/** Headers of a CORS preflight answer. */
export const preflightHeaders = (origin: string | undefined, allowed: ReadonlyArray<string>): Record<string, string> => ({
  ...corsHeaders(origin, allowed),
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers": "content-type, x-api-key, authorization",
  "access-control-max-age": "600"
})

/**
 * Build the policy for a configuration; `check` answers `undefined` (go on) or a refusal.
 * `session`, when the service runs beside the gateway, tells whether the request carries a
 * signed-in session.
 */
export const make = (security: PreviewConfigShape["security"], now: () => number = Date.now) => {
  const limiter = security.rateLimitPerMinute > 0 ? new RateLimiterMemory({ points: security.rateLimitPerMinute, duration: 60 }) : undefined
  const keysConfigured = security.apiKeys.length > 0 || Option.isSome(security.signingKey)
  const needsCredential = keysConfigured || !security.anonymous

  const check = async (parts: RequestParts, session?: () => Promise<boolean>): Promise<Refusal | undefined> => {
    if (limiter) {
      try {
        await limiter.consume(clientIp(parts, security.trustProxy))
      } catch (e) {
        if (e instanceof RateLimiterRes) {
          const retry = Math.max(1, Math.ceil(e.msBeforeNext / 1000))
          return { status: 429, code: "rate_limited", message: `too many requests; retry in ${retry} s`, headers: { "retry-after": String(retry) } }
        }
        throw e
      }
    }
    const bearer = /^bearer\s+(.+)$/i.exec(parts.headers["authorization"] ?? "")?.[1]
    const presentedKey = parts.headers["x-api-key"] ?? bearer
    const keyOk = presentedKey !== undefined && security.apiKeys.length > 0 && keyMatches(presentedKey, security.apiKeys)
    if (needsCredential && !keyOk) {
      const verdict = Option.isSome(security.signingKey) ? signatureVerdict(parts.url, security.signingKey.value, Math.floor(now() / 1000)) : "missing"
      if (verdict === "expired") return { status: 403, code: "signature_expired", message: "the signed URL has expired" }
      if (verdict === "invalid") return { status: 403, code: "invalid_signature", message: "the URL signature is not valid" }
      if (verdict === "missing" && !(session !== undefined && (await session()))) {
        if (presentedKey !== undefined && security.apiKeys.length > 0) return { status: 401, code: "invalid_api_key", message: "the API key is not valid" }
        if (session !== undefined) return { status: 401, code: "authentication_required", message: "sign in (session cookie or access token), or use an API key or a signed URL" }
        return Option.isSome(security.signingKey)
          ? { status: 401, code: "signature_required", message: "a signed URL (sig) or an API key is required" }
          : { status: 401, code: "api_key_required", message: "an API key is required (X-API-Key or Authorization: Bearer)" }
      }
    }
    if (security.validateReferer && !keyOk) {
      const referer = parts.headers["referer"]
      if (!referer) return { status: 403, code: "referer_required", message: "requests must come from an allowed site (no Referer)" }
      if (!refererAllowed(referer, security.allowedReferers)) return { status: 403, code: "referer_not_allowed", message: "this site may not use the preview service" }
    }
    return undefined
  }

  return { check }
}
