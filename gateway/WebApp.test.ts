/**
 * Serving the web app over real HTTP: client routes get the page, the server's own paths are
 * never shadowed, hashed assets are cached for good, the page carries a CSP that allows exactly
 * its inline bootstrap script, and a missing build says how to build.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as NodeZlib from "node:zlib"
import * as Health from "../runtime/Health.ts"
import * as Http from "../runtime/Http.ts"
import * as Telemetry from "../runtime/Telemetry.ts"
import { freePort } from "../runtime/testing/process.ts"
import * as WebApp from "./WebApp.ts"

const bootstrap = `{ __sveltekit_x = { base: "" }; import("/_app/immutable/entry/start.AbC123.js") }`
const page = `<!doctype html><html><head><title>Troupe</title></head><body><div><script>${bootstrap}</script></div></body></html>`
const asset = `console.log("app"); const t = \`<div id="announcer" style="position: absolute; left: 0">\``

/** A build folder like vite's: the page, a hashed asset with its .br/.gz twins, a plain file. */
const fixture = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-web-"))
  NodeFs.mkdirSync(NodePath.join(dir, "_app", "immutable", "entry"), { recursive: true })
  NodeFs.writeFileSync(NodePath.join(dir, "index.html"), page)
  const js = NodePath.join(dir, "_app", "immutable", "entry", "start.AbC123.js")
  NodeFs.writeFileSync(js, asset)
  NodeFs.writeFileSync(js + ".br", NodeZlib.brotliCompressSync(asset))
  NodeFs.writeFileSync(js + ".gz", NodeZlib.gzipSync(asset))
  NodeFs.writeFileSync(NodePath.join(dir, "_app", "version.json"), `{"version":"1"}`)
  return dir
}

const serve = (port: number, build: WebApp.WebBuild | undefined) =>
  Http.layerServer({ host: "127.0.0.1", port }).pipe(
    Layer.provide(Layer.mergeAll(
      Http.layerOperationalRoutes({ service: "test", version: "0.0.0" }),
      Http.Routes.use((router) =>
        Effect.all([
          router.mountApp("/v1", Effect.succeed(HttpServerResponse.unsafeJson({ api: true })), { includePrefix: true }),
          WebApp.mount(router, build)
        ]))
    )),
    Layer.provide(Http.Routes.Live),
    Layer.provideMerge(Layer.mergeAll(Health.layer(), Telemetry.layerMetricSources)),
    Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
  )

const started = (build: WebApp.WebBuild | undefined) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    yield* Layer.launch(serve(port, build)).pipe(Effect.forkScoped)
    const url = `http://127.0.0.1:${port}`
    for (let i = 0; i < 50; i++) {
      const ok = yield* Effect.promise(() => fetch(url + "/health").then((r) => r.ok, () => false))
      if (ok) break
      yield* Effect.sleep("100 millis")
    }
    return (path: string, init?: RequestInit) => Effect.promise(() => fetch(url + path, init))
  })

describe("web app serving", () => {
  it.live("serves the page for client routes and never shadows the server's paths", () =>
    Effect.gen(function*() {
      const dir = fixture()
      const get = yield* started(WebApp.load(dir))
      for (const path of ["/", "/chats", "/chats/c123", "/settings/keys", "/s/c123.s456"]) {
        const res = yield* get(path)
        expect(res.status, path).toBe(200)
        expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8")
        expect(yield* Effect.promise(() => res.text())).toBe(page)
      }
      const api = yield* get("/v1/anything")
      expect(yield* Effect.promise(() => api.json())).toEqual({ api: true })
      expect((yield* get("/health")).status).toBe(200)
      for (const path of ["/health/nope", "/metrics/x", "/docs/x", "/api/v1/nope", "/_app/immutable/missing.js", "/missing.png"]) {
        const res = yield* get(path)
        expect(res.status, path).toBe(404)
        expect((yield* Effect.promise(() => res.json())).error.code).toBe("not_found")
      }
      expect((yield* get("/chats", { method: "POST" })).status).toBe(404)
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }).pipe(Effect.scoped))

  it.live("caches hashed assets immutably, revalidates the rest, and sends compressed twins", () =>
    Effect.gen(function*() {
      const dir = fixture()
      const get = yield* started(WebApp.load(dir))
      const br = yield* get("/_app/immutable/entry/start.AbC123.js", { headers: { "accept-encoding": "br, gzip" } })
      expect(br.headers.get("cache-control")).toBe("public, max-age=31536000, immutable")
      expect(br.headers.get("content-encoding")).toBe("br")
      expect(br.headers.get("content-type")).toBe("text/javascript; charset=utf-8")
      expect(br.headers.get("x-content-type-options")).toBe("nosniff")
      expect(yield* Effect.promise(() => br.text())).toBe(asset)
      const plain = yield* get("/_app/immutable/entry/start.AbC123.js", { headers: { "accept-encoding": "identity" } })
      expect(plain.headers.get("content-encoding")).toBeNull()
      const index = yield* get("/chats")
      expect(index.headers.get("cache-control")).toBe("no-cache")
      const etag = index.headers.get("etag")!
      expect((yield* get("/chats", { headers: { "if-none-match": etag } })).status).toBe(304)
      expect((yield* get("/_app/version.json")).headers.get("cache-control")).toBe("no-cache")
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }).pipe(Effect.scoped))

  it.live("puts a CSP on the page that allows its inline script by hash, never 'unsafe-inline', and refuses framing", () =>
    Effect.gen(function*() {
      const dir = fixture()
      const get = yield* started(WebApp.load(dir))
      const res = yield* get("/")
      const csp = res.headers.get("content-security-policy")!
      const scriptHash = NodeCrypto.createHash("sha256").update(bootstrap).digest("base64")
      const styleHash = NodeCrypto.createHash("sha256").update("position: absolute; left: 0").digest("base64")
      expect(csp).toContain(`script-src 'self' 'sha256-${scriptHash}';`)
      expect(csp).toContain(`style-src-attr 'unsafe-hashes' 'sha256-${styleHash}';`)
      expect(csp).toContain("frame-ancestors 'none'")
      expect(csp).toContain("object-src 'none'")
      expect(csp).not.toContain("unsafe-inline")
      expect(res.headers.get("x-frame-options")).toBe("DENY")
      expect(res.headers.get("x-content-type-options")).toBe("nosniff")
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }).pipe(Effect.scoped))

  it.live("without a build, answers client routes with a page that says how to build", () =>
    Effect.gen(function*() {
      const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-web-empty-"))
      expect(WebApp.load(dir)).toBeUndefined()
      const get = yield* started(undefined)
      const res = yield* get("/chats")
      expect(res.status).toBe(200)
      expect(yield* Effect.promise(() => res.text())).toContain("npm run build:web")
      expect(res.headers.get("content-security-policy")).toContain("default-src 'none'")
      expect((yield* get("/v1/x")).status).toBe(200)
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }).pipe(Effect.scoped))
})
