/**
 * Security headers every response of every role carries, and Content-Security-Policy helpers for
 * the routes that serve HTML.
 *
 * A response that sets its own `Content-Security-Policy` keeps it; every other response gets
 * `strictPolicy` (nothing may load or run, nothing may frame it), so an HTML page that forgot its
 * policy is inert rather than open. Pages build their own policy with `csp` or `htmlPolicy`, which
 * hashes the page's inline `<script>` and `<style>` blocks so no `'unsafe-inline'` is needed.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeCrypto from "node:crypto"

/** The policy of every response that brings none: load nothing, run nothing, never be framed. */
export const strictPolicy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

/** HSTS for a server whose public URL is https: one year, subdomains included. */
export const hstsValue = "max-age=31536000; includeSubDomains"

/** What the middleware adds to responses. */
export interface Options {
  /** Send `Strict-Transport-Security` (the public URL is https). */
  readonly hsts: boolean
}

/** The headers a response gets, given the headers it already has. */
export const headersFor = (existing: Readonly<Record<string, string>>, options: Options): Record<string, string> => ({
  "x-content-type-options": "nosniff",
  "referrer-policy": existing["referrer-policy"] ?? "no-referrer",
  "x-frame-options": existing["x-frame-options"] ?? "DENY",
  "content-security-policy": existing["content-security-policy"] ?? strictPolicy,
  ...(options.hsts ? { "strict-transport-security": hstsValue } : {})
})

/** Add the security headers to a response. */
export const apply = (response: HttpServerResponse.HttpServerResponse, options: Options): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.setHeaders(response, headersFor(response.headers, options))

/** A policy from directives: `csp({ "default-src": ["'self'"] })` → `default-src 'self'`. */
export const csp = (directives: Readonly<Record<string, ReadonlyArray<string>>>): string =>
  Object.entries(directives)
    .map(([name, values]) => (values.length > 0 ? `${name} ${values.join(" ")}` : name))
    .join("; ")

const sha256 = (text: string) => `'sha256-${NodeCrypto.createHash("sha256").update(text, "utf8").digest("base64")}'`

/** The `'sha256-…'` sources of a page's inline scripts and styles (JSON data blocks are not scripts). */
export const inlineHashes = (html: string): { readonly scripts: ReadonlyArray<string>; readonly styles: ReadonlyArray<string> } => {
  const scripts: Array<string> = []
  const styles: Array<string> = []
  for (const m of html.matchAll(/<script(\s[^>]*)?>([\s\S]*?)<\/script\s*>/gi)) {
    const attributes = m[1] ?? ""
    if (/\ssrc\s*=/i.test(attributes)) continue
    const type = /\stype\s*=\s*["']?([^"'\s>]+)/i.exec(attributes)?.[1]?.toLowerCase()
    if (type !== undefined && type !== "module" && !type.includes("javascript")) continue
    scripts.push(sha256(m[2]!))
  }
  for (const m of html.matchAll(/<style(\s[^>]*)?>([\s\S]*?)<\/style\s*>/gi)) styles.push(sha256(m[2]!))
  return { scripts: [...new Set(scripts)], styles: [...new Set(styles)] }
}

/**
 * A policy for a self-contained HTML page: its own inline scripts and styles (by hash), images
 * from itself and `data:`, requests to its own origin, nothing else; `extra` adds sources.
 */
export const htmlPolicy = (html: string, extra: Readonly<Record<string, ReadonlyArray<string>>> = {}): string => {
  const { scripts, styles } = inlineHashes(html)
  const directives: Record<string, ReadonlyArray<string>> = {
    "default-src": ["'none'"],
    "script-src": scripts.length > 0 ? scripts : ["'none'"],
    "style-src": styles.length > 0 ? styles : ["'none'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "base-uri": ["'none'"],
    "form-action": ["'none'"],
    "frame-ancestors": ["'none'"]
  }
  for (const [name, values] of Object.entries(extra)) directives[name] = [...(directives[name] ?? []).filter((v) => v !== "'none'"), ...values]
  return csp(directives)
}
