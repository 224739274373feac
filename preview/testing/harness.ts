/**
 * Test harness: a local origin server (fixtures, pages, redirects) and a real preview server on a
 * free port, reached through the operator allowlist, with a resolver that knows the test names.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as SafeFetch from "../../runtime/SafeFetch.ts"
import * as PreviewConfig from "../Config.ts"
import * as Preview from "../Preview.ts"
import * as Server from "../Server.ts"
import { fixturesDir as sharedFixturesDir } from "../../runtime/testing/fixtures.ts"

/** The shared fixtures (beside the repository). */
export const fixturesDir = sharedFixturesDir()
export const imagesDir = NodePath.join(fixturesDir, "images")
export const metadataDir = NodePath.join(fixturesDir, "metadata")

/** Image fixture file names. */
export const imageFixtures = (): ReadonlyArray<string> => NodeFs.readdirSync(imagesDir).filter((f) => !f.endsWith(".md")).sort()

/** A free TCP port on 127.0.0.1. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = NodeNet.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as NodeNet.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

/** A route of the origin server. */
export type OriginHandler = (req: NodeHttp.IncomingMessage, res: NodeHttp.ServerResponse) => void

/** The local origin: `/images/<fixture>`, `/pages/<dir>` (metadata fixtures) and extra routes. */
export const startOrigin = async (extra: Record<string, OriginHandler> = {}) => {
  let hits = 0
  const server = NodeHttp.createServer((req, res) => {
    hits++
    const url = new URL(req.url ?? "/", "http://origin")
    const handler = extra[url.pathname]
    if (handler) return handler(req, res)
    const image = /^\/images\/([^/]+)$/.exec(url.pathname)
    if (image) {
      const file = NodePath.join(imagesDir, decodeURIComponent(image[1]!))
      if (!NodeFs.existsSync(file)) {
        res.writeHead(404)
        return res.end()
      }
      res.writeHead(200, { "content-type": "application/octet-stream" })
      return res.end(NodeFs.readFileSync(file))
    }
    const page = /^\/pages\/([^/]+)\/?$/.exec(url.pathname)
    if (page) {
      const file = NodePath.join(metadataDir, page[1]!, "input.html")
      if (!NodeFs.existsSync(file)) {
        res.writeHead(404)
        return res.end()
      }
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
      return res.end(NodeFs.readFileSync(file))
    }
    res.writeHead(404, { "content-type": "text/plain" })
    res.end("not found")
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as NodeNet.AddressInfo).port
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** Names the test resolver answers: `*.private.test` → 10.0.0.x, `origin.test` → 127.0.0.1. */
export const testResolver: SafeFetch.Resolver = async (hostname) => {
  if (hostname === "origin.test") return [{ address: "127.0.0.1", family: 4 }]
  if (hostname.endsWith(".private.test")) return [{ address: "10.0.0.7", family: 4 }]
  if (hostname === "metadata.test") return [{ address: "169.254.169.254", family: 4 }]
  throw Object.assign(new Error(`no such name ${hostname}`), { code: "ENOTFOUND" })
}

/** A running preview server. */
export interface Running {
  readonly base: string
  /** The admin listener (`/health/detailed`, `/metrics`). */
  readonly adminBase: string
  readonly config: PreviewConfig.PreviewConfigShape
  readonly close: () => Promise<void>
}

/** Start a standalone preview server (errors and warnings logged, nothing else); anonymous unless `security` says otherwise. */
export const startPreview = async (
  overrides: Omit<Parameters<typeof PreviewConfig.make>[0], "cacheDir"> & { readonly cacheDir?: string }
): Promise<Running> => {
  const port = await freePort()
  const adminPort = await freePort()
  const cacheDir = overrides.cacheDir ?? NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "preview-cache-"))
  const config = PreviewConfig.make({ ...overrides, security: { anonymous: true, ...overrides.security }, cacheDir, http: { host: "127.0.0.1", port } })
  const admin = { host: "127.0.0.1", port: adminPort, token: Option.none() }
  const layer = Server.layerStandalone(config, { version: "test", admin, fetcher: Layer.succeed(Preview.Fetcher, SafeFetch.makeFetcher(testResolver)) }).pipe(
    Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
  )
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const base = `http://127.0.0.1:${port}`
  const adminBase = `http://127.0.0.1:${adminPort}`
  // Wait until every worker is up so the first test does not pay the start-up.
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`${adminBase}/health/detailed`).then((x) => x.json() as Promise<{ checks: { preview: { details: { pool: { ready: number; size: number } } } } }>)
    if (r.checks.preview.details.pool.ready === r.checks.preview.details.pool.size) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { base, adminBase, config, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
