import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Health from "./Health.ts"
import * as Http from "./Http.ts"
import * as Telemetry from "./Telemetry.ts"
import { freePort } from "./testing/process.ts"

const serve = (port: number, checks: ReadonlyArray<Health.HealthCheck>) =>
  Http.layerServer({ host: "127.0.0.1", port }).pipe(
    Layer.provide(Layer.mergeAll(
      Http.layerOperationalRoutes({ service: "test", version: "0.0.0" }),
      Http.Routes.use((router) =>
        Effect.all([
          router.post("/echo", Effect.succeed(HttpServerResponse.text("ok"))),
          router.get("/boom", Effect.die(new Error("kaboom")))
        ]))
    )),
    Layer.provide(Http.Routes.Live),
    Layer.provide(Layer.effectDiscard(Effect.forEach(checks, Health.register))),
    Layer.provideMerge(Layer.mergeAll(Health.layer({ timeout: "300 millis" }), Telemetry.layerMetricSources))
  )

describe("HTTP server", () => {
  it.live("answers 503 naming the dependencies that failed", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.launch(serve(port, [
        { name: "database", check: Effect.void },
        { name: "cache", check: Effect.fail(new Error("connection refused")) },
        { name: "blob_store", check: Effect.never }
      ])).pipe(Effect.forkScoped)
      yield* Effect.sleep("300 millis")
      const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`))
      expect(response.status).toBe(503)
      const body = yield* Effect.promise(() => response.json())
      expect(body).toMatchObject({ status: "unhealthy", failed: ["cache", "blob_store"], errors: { cache: "connection refused" } })
      const detailed = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health/detailed`).then((r) => r.json()))
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

  it("groups routes for metric labels without ids", () => {
    expect(Http.routeGroup("/v1/chats/AbC123xyz/messages?x=1")).toBe("/v1/chats")
    expect(Http.routeGroup("/health")).toBe("/health")
    expect(Http.routeGroup("/api/v1/image?url=x")).toBe("/api/v1")
  })
})
