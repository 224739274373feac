import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as NodeHttp from "node:http"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Health from "./Health.ts"
import * as Http from "./Http.ts"
import * as Telemetry from "./Telemetry.ts"
import { freePort } from "./testing/process.ts"

const serve = (port: number, checks: ReadonlyArray<Health.HealthCheck>, admin: { readonly port: number; readonly token?: string } = { port: 0 }) =>
  Layer.merge(
    Http.layerServer({ host: "127.0.0.1", port }).pipe(
      Layer.provide(Layer.mergeAll(
        Http.layerOperationalRoutes(),
        Http.Routes.use((router) =>
          Effect.all([
            router.post("/echo", Effect.succeed(HttpServerResponse.text("ok"))),
            router.get("/boom", Effect.die(new Error("kaboom"))),
            router.get("/page", Effect.succeed(HttpServerResponse.text("<p>hi</p>", { contentType: "text/html" }))),
            router.get("/own-policy", Effect.succeed(HttpServerResponse.text("<p>x</p>", { contentType: "text/html", headers: { "content-security-policy": "default-src 'self'" } })))
          ]))
      )),
      Layer.provide(Http.Routes.Live)
    ),
    Http.layerAdminServer({ host: "127.0.0.1", port: admin.port, token: admin.token ? Option.some(Redacted.make(admin.token)) : Option.none(), service: "test", version: "0.0.0" })
  ).pipe(
    Layer.provide(Layer.effectDiscard(Effect.forEach(checks, Health.register))),
    Layer.provideMerge(Layer.mergeAll(Health.layer({ timeout: "300 millis" }), Telemetry.layerMetricSources))
  )

describe("HTTP server", () => {
  it.live("answers 503 naming the dependencies that failed", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const adminPort = yield* Effect.promise(freePort)
      yield* Layer.launch(serve(port, [
        { name: "database", check: Effect.void },
        { name: "cache", check: Effect.fail(new Error("connection refused")) },
        { name: "blob_store", check: Effect.never }
      ], { port: adminPort })).pipe(Effect.forkScoped)
      yield* Effect.sleep("300 millis")
      const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`))
      expect(response.status).toBe(503)
      const body = yield* Effect.promise(() => response.json())
      expect(body).toMatchObject({ status: "unhealthy", failed: ["cache", "blob_store"], errors: { cache: "connection refused" } })
      const detailed = yield* Effect.promise(() => fetch(`http://127.0.0.1:${adminPort}/health/detailed`).then((r) => r.json()))
      expect(detailed.checks.database.status).toBe("healthy")
      expect(detailed.checks.blob_store.error).toMatch(/timed out/)
    }).pipe(Effect.scoped))

  it.live("gives errors a JSON body and a request id, refuses oversized bodies, survives defects", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.launch(serve(port, [])).pipe(Effect.forkScoped)
      yield* Effect.sleep("300 millis")
      const boom = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/boom`))
      expect(boom.status).toBe(500)
      const body = yield* Effect.promise(() => boom.json())
      expect(body).toEqual({ error: { code: "internal_error", message: "Internal error", details: { request_id: boom.headers.get("x-request-id") } } })
      const big = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/echo`, { method: "POST", body: "x".repeat(Http.defaultMaxBodyBytes + 1) }))
      expect(big.status).toBe(413)
      expect((yield* Effect.promise(() => big.json())).error.code).toBe("payload_too_large")
      const traced = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/echo`, { method: "POST", body: "hi", headers: { "x-request-id": "abc-123" } }))
      expect(traced.headers.get("x-request-id")).toBe("abc-123")
      expect(traced.headers.get("x-content-type-options")).toBe("nosniff")
      const health = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`))
      expect(health.status).toBe(200)
    }).pipe(Effect.scoped))

  it.live("serves /metrics and /health/detailed only on the admin listener, behind the token when one is set", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const adminPort = yield* Effect.promise(freePort)
      yield* Layer.launch(serve(port, [], { port: adminPort, token: "a-metrics-token-of-some-length" })).pipe(Effect.forkScoped)
      yield* Effect.sleep("300 millis")
      const get = (url: string, headers: Record<string, string> = {}) => Effect.promise(() => fetch(url, { headers }).then(async (r) => ({ status: r.status, text: await r.text() })))
      // the public port: /health only
      expect((yield* get(`http://127.0.0.1:${port}/health`)).status).toBe(200)
      expect((yield* get(`http://127.0.0.1:${port}/metrics`)).status).toBe(404)
      expect((yield* get(`http://127.0.0.1:${port}/health/detailed`)).status).toBe(404)
      // the admin port: /health open, the others need the token
      expect((yield* get(`http://127.0.0.1:${adminPort}/health`)).status).toBe(200)
      expect((yield* get(`http://127.0.0.1:${adminPort}/metrics`)).status).toBe(401)
      expect((yield* get(`http://127.0.0.1:${adminPort}/metrics`, { authorization: "Bearer wrong-token-wrong-token" })).status).toBe(401)
      const metrics = yield* get(`http://127.0.0.1:${adminPort}/metrics`, { authorization: "Bearer a-metrics-token-of-some-length" })
      expect(metrics.status).toBe(200)
      expect(metrics.text).toContain("process_resident_memory_bytes")
      expect((yield* get(`http://127.0.0.1:${adminPort}/health/detailed`, { authorization: "Bearer a-metrics-token-of-some-length" })).status).toBe(200)
    }).pipe(Effect.scoped))

  it.live("refuses non-canonical paths and gives every response a CSP", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.launch(serve(port, [])).pipe(Effect.forkScoped)
      yield* Effect.sleep("300 millis")
      const raw = (path: string) =>
        Effect.promise(() =>
          new Promise<number>((resolve, reject) => {
            const req = NodeHttp.request({ host: "127.0.0.1", port, path, method: "GET" }, (res) => {
              res.resume()
              resolve(res.statusCode!)
            })
            req.on("error", reject)
            req.end()
          }))
      expect(yield* raw("/health")).toBe(200)
      for (const path of ["//health", "/%68ealth", "/./health", "/x/../health", "/HEALTH", "/health%zz"]) expect(yield* raw(path), path).toBe(404)
      const page = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/page`))
      expect(page.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
      expect(page.headers.get("strict-transport-security")).toBeNull()
      const own = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/own-policy`))
      expect(own.headers.get("content-security-policy")).toBe("default-src 'self'")
    }).pipe(Effect.scoped))

  it("canonical paths", () => {
    expect(Http.isCanonicalPath("/v1/auth/login?x=%61")).toBe(true)
    expect(Http.isCanonicalPath("/v1/chats/a%20b")).toBe(true)
    for (const p of ["/v1//auth/login", "/v1/%61uth/login", "/v1/%2e%2e/x", "/v1/./auth", "v1/auth", "/v1\\auth", "/v1/%7e"]) expect(Http.isCanonicalPath(p), p).toBe(false)
  })

  it("labels requests by route template, without ids", () => {
    const served: Http.ServedRoutes = {
      routes: [{ method: "GET", path: "/health" }, { method: "POST", path: "/echo" }, { method: "GET", path: "/api/v1/image" }],
      mounts: [["/docs"]]
    }
    Effect.runSync(Http.registerRouteTemplates([
      { method: "POST", path: "/v1/chats/:id/messages" },
      { method: "GET", path: "/v1/chats/:id/events" },
      { method: "GET", path: "/v1/chats" }
    ]))
    expect(Http.routeTemplate(served, "POST", "/v1/chats/AbC123xyz/messages?x=1")).toBe("/v1/chats/:id/messages")
    expect(Http.routeTemplate(served, "GET", "/v1/chats/AbC123xyz/events")).toBe("/v1/chats/:id/events")
    expect(Http.routeTemplate(served, "GET", "/v1/chats?before=3")).toBe("/v1/chats")
    expect(Http.routeTemplate(served, "GET", "/health")).toBe("/health")
    expect(Http.routeTemplate(served, "HEAD", "/health")).toBe("/health")
    expect(Http.routeTemplate(served, "GET", "/api/v1/image?url=x")).toBe("/api/v1/image")
    expect(Http.routeTemplate(served, "GET", "/docs/swagger.css")).toBe("/docs/*")
    // a method or path no route takes: one bounded label, never the path
    expect(Http.routeTemplate(served, "DELETE", "/v1/chats/AbC123xyz/messages")).toBe("unmatched")
    expect(Http.routeTemplate(served, "GET", "/AbC123xyz")).toBe("unmatched")
  })

  it.live("labels the served router's requests by their route", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const adminPort = yield* Effect.promise(freePort)
      yield* Layer.launch(serve(port, [], { port: adminPort })).pipe(Effect.forkScoped)
      yield* Effect.sleep("300 millis")
      yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/echo`, { method: "POST", body: "x", headers: { "content-type": "text/plain" } }))
      yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/nothing-here-123`))
      const text = yield* Effect.promise(() => fetch(`http://127.0.0.1:${adminPort}/metrics`).then((r) => r.text()))
      expect(text).toMatch(/^troupe_http_requests_total\{method="POST",route="\/echo",status="200"\} \d+$/m)
      expect(text).toMatch(/^troupe_http_requests_total\{method="GET",route="unmatched",status="404"\} \d+$/m)
      expect(text).not.toContain("nothing-here-123")
    }).pipe(Effect.scoped))
})
