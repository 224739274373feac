/**
 * The web app at `/`: the files of `web/build` (built by `npm install` / `npm start`, see
 * `bin/build-web.mjs`), read into memory when the gateway starts and served from there, with
 * their precompressed `.br` / `.gz` twins by `Accept-Encoding`.
 *
 * - `/_app/immutable/*` carry a content hash in their names: cached for a year, `immutable`.
 * - Other files and the page itself are revalidated (`no-cache` + `ETag`, 304 on a match).
 * - A `GET` of a path that is no file, has no extension and lies outside the server's own
 *   prefixes (`/v1`, `/docs`, `/health`, `/metrics`, `/api` …) is a client route: it gets
 *   `index.html` (the single-page app routes in the browser). Everything else stays a JSON 404.
 * - The page's `Content-Security-Policy` allows scripts from this origin plus the hash of each
 *   inline script of `index.html` (SvelteKit's bootstrap), never `'unsafe-inline'`; framing is
 *   refused (`frame-ancestors 'none'`).
 *
 * Without a build the routes answer a short page saying how to build it.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { errorResponse } from "../runtime/Http.ts"

/** Where `vite build` writes the app. */
export const defaultBuildDir = NodePath.resolve(import.meta.dirname, "..", "web", "build")

/** Path prefixes that belong to the server, never to the app's client routes. */
export const serverPrefixes: ReadonlyArray<string> = ["/v1", "/api", "/docs", "/health", "/metrics", "/mcp", "/openai", "/_app"]

const mimeTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
  ".map": "application/json"
}

/** One file of the build, with its compressed twins. */
interface Asset {
  readonly body: Uint8Array
  readonly br: Uint8Array | undefined
  readonly gzip: Uint8Array | undefined
  readonly type: string
  readonly etag: string
  readonly immutable: boolean
}

/** The loaded build. */
export interface WebBuild {
  readonly dir: string
  readonly assets: ReadonlyMap<string, Asset>
  /** The page's CSP, with the hashes of its inline scripts. */
  readonly csp: string
}

const inlineScript = /<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/gi

/** A static `style="…"` attribute in compiled templates (SvelteKit's route announcer has one). */
const styleAttribute = /\bstyle="([^"<>]*)"/g

const sha256 = (text: string) => `'sha256-${NodeCrypto.createHash("sha256").update(text).digest("base64")}'`

/**
 * The page's Content-Security-Policy: this origin, plus the hashes of `html`'s inline scripts,
 * plus (for style attributes only, `'unsafe-hashes'`) the hashes of the static `style`
 * attributes found in the app's scripts. No `'unsafe-inline'` anywhere.
 */
export const contentSecurityPolicy = (html: string, scripts: ReadonlyArray<string> = []): string => {
  const scriptHashes = [...new Set([...html.matchAll(inlineScript)].map((m) => sha256(m[1]!)))]
  const styleHashes = [...new Set(scripts.flatMap((js) => [...js.matchAll(styleAttribute)].map((m) => sha256(m[1]!))))]
  return [
    "default-src 'self'",
    `script-src 'self' ${scriptHashes.join(" ")}`.trim(),
    "style-src 'self'",
    ...(styleHashes.length > 0 ? [`style-src-attr 'unsafe-hashes' ${styleHashes.join(" ")}`] : []),
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "media-src 'self' blob:",
    "worker-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'"
  ].join("; ")
}

/** Read every file of a build folder into memory (undefined when there is no build). */
export const load = (dir: string = defaultBuildDir): WebBuild | undefined => {
  const index = NodePath.join(dir, "index.html")
  if (!NodeFs.existsSync(index)) return undefined
  const assets = new Map<string, Asset>()
  const walk = (folder: string) => {
    for (const entry of NodeFs.readdirSync(folder, { withFileTypes: true })) {
      const full = NodePath.join(folder, entry.name)
      if (entry.isDirectory()) {
        walk(full)
        continue
      }
      if (entry.name.endsWith(".br") || entry.name.endsWith(".gz")) continue
      const url = "/" + NodePath.relative(dir, full).split(NodePath.sep).join("/")
      const body = new Uint8Array(NodeFs.readFileSync(full))
      const twin = (ext: string) => (NodeFs.existsSync(full + ext) ? new Uint8Array(NodeFs.readFileSync(full + ext)) : undefined)
      assets.set(url, {
        body,
        br: twin(".br"),
        gzip: twin(".gz"),
        type: mimeTypes[NodePath.extname(entry.name).toLowerCase()] ?? "application/octet-stream",
        etag: `"${NodeCrypto.createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
        immutable: url.startsWith("/_app/immutable/")
      })
    }
  }
  walk(dir)
  const decoder = new TextDecoder()
  const scripts = [...assets].flatMap(([url, a]) => (url.endsWith(".js") ? [decoder.decode(a.body)] : []))
  return { dir, assets, csp: contentSecurityPolicy(NodeFs.readFileSync(index, "utf8"), scripts) }
}

/** Headers of every HTML page of the app. */
const pageHeaders = (csp: string) => ({
  "content-security-policy": csp,
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
  "x-frame-options": "DENY"
})

/**
 * Whether a path is one of the app's client routes: not the server's, and not a file (no
 * extension) — except share pages `/s/<chat>.<share>`, whose token has a dot.
 */
export const isClientRoute = (pathname: string): boolean => {
  if (serverPrefixes.some((p) => pathname === p || pathname.startsWith(p + "/"))) return false
  if (/^\/s\/[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$/.test(pathname)) return true
  const last = pathname.slice(pathname.lastIndexOf("/") + 1)
  return !last.includes(".")
}

const notBuilt = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Troupe</title></head>
<body><h1>Troupe</h1><p>The web app is not built. Run <code>npm install</code> (or <code>npm run build:web</code>) in the
Troupe folder and restart the server. The API is at <a href="/docs">/docs</a>.</p></body></html>`

const respond = (build: WebBuild, asset: Asset, request: HttpServerRequest.HttpServerRequest) => {
  const html = asset.type.startsWith("text/html")
  const headers: Record<string, string> = {
    "cache-control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache",
    etag: asset.etag,
    vary: "accept-encoding",
    ...(html ? pageHeaders(build.csp) : {})
  }
  if (request.headers["if-none-match"] === asset.etag) return HttpServerResponse.empty({ status: 304, headers })
  const accepted = request.headers["accept-encoding"] ?? ""
  const [body, encoding] = asset.br && /\bbr\b/.test(accepted)
    ? [asset.br, "br"]
    : asset.gzip && /\bgzip\b/.test(accepted)
    ? [asset.gzip, "gzip"]
    : [asset.body, undefined]
  return HttpServerResponse.uint8Array(body, {
    contentType: asset.type,
    headers: encoding ? { ...headers, "content-encoding": encoding } : headers
  })
}

/** The handler of every path the other routes do not take. */
export const handler = (build: WebBuild | undefined) =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
    const pathname = decodeURIComponent(request.url.split("?")[0]!.split("#")[0]!)
    if (request.method !== "GET" && request.method !== "HEAD") return errorResponse(404, "not_found", "No such route")
    if (!build) {
      return isClientRoute(pathname)
        ? HttpServerResponse.text(notBuilt, { contentType: "text/html; charset=utf-8", headers: { "cache-control": "no-store", ...pageHeaders("default-src 'none'; frame-ancestors 'none'") } })
        : errorResponse(404, "not_found", "No such route")
    }
    const asset = build.assets.get(pathname) ?? (isClientRoute(pathname) ? build.assets.get("/index.html") : undefined)
    return asset ? respond(build, asset, request) : errorResponse(404, "not_found", "No such route")
  }).pipe(Effect.catchAllDefect(() => Effect.succeed(errorResponse(400, "bad_request", "Malformed path"))))

/** Add the web app to a router: every GET path the other routes do not take. */
export const mount = <E, R>(router: HttpRouter.HttpRouter.Service<E, R>, build: WebBuild | undefined) =>
  Effect.zipRight(router.get("*", handler(build)), router.get("/", handler(build)))
