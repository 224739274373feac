/**
 * The HTTP server every role runs: the routes other folders contribute to `Routes`, plus
 * `/health`, `/health/detailed` and `/metrics`, behind middleware for request ids, access logs,
 * metrics, security headers, body limits and JSON errors.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as NodeCrypto from "node:crypto"
import * as NodeHttp from "node:http"
import { Health } from "./Health.ts"
import * as Telemetry from "./Telemetry.ts"

/** The router other folders add their routes to (`Routes.use((router) => router.get(...))`). */
export class Routes extends HttpRouter.Tag("troupe/runtime/Http/Routes")<Routes>() {}

/** The JSON error body every endpoint uses: `{"error":{"code","message","details?"}}`. */
export const errorResponse = (status: number, code: string, message: string, details?: unknown) =>
  HttpServerResponse.unsafeJson({ error: details === undefined ? { code, message } : { code, message, details } }, { status })

/** Default request body limit (routes that take uploads raise it for themselves). */
export const defaultMaxBodyBytes = 1024 * 1024

const requestIdRe = /^[A-Za-z0-9._-]{1,128}$/

/** Group a path for metrics without unbounded label values: `/v1/chats/abc` → `/v1/chats`. */
export const routeGroup = (path: string): string => {
  const segments = path.split("?")[0]!.split("/").filter((s) => s.length > 0).slice(0, 2)
  return "/" + segments.map((s) => (/^[a-z_]+$/.test(s) || /^v\d+$/.test(s) ? s : ":id")).join("/")
}

/** Request ids, access logs, metrics, security headers and JSON errors around an app. */
export const middleware = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const incoming = request.headers["x-request-id"]
    const requestId = incoming && requestIdRe.test(incoming) ? incoming : NodeCrypto.randomUUID()
    const start = performance.now()
    const response = yield* app.pipe(
      Effect.catchAllCause((cause) => {
        const failure = Cause.failureOption(cause)
        if (Option.isSome(failure) && HttpServerError.isServerError(failure.value)) {
          const e = failure.value
          if (e._tag === "RouteNotFound") return Effect.succeed(errorResponse(404, "not_found", "No such route"))
          if (e._tag === "RequestError") {
            const tooBig = String(e.cause ?? "").includes("FiberFailure") || String(e.description ?? "").toLowerCase().includes("body")
            return Effect.succeed(
              tooBig && e.reason === "Decode"
                ? errorResponse(413, "payload_too_large", "Request body too large")
                : errorResponse(400, "bad_request", e.description ?? "Malformed request")
            )
          }
        }
        if (Cause.isInterruptedOnly(cause)) return Effect.succeed(HttpServerResponse.empty({ status: 499 }))
        return Effect.as(
          Effect.logError("Unhandled error", cause),
          errorResponse(500, "internal_error", "Internal error", { request_id: requestId })
        )
      }),
      Effect.annotateLogs({ request_id: requestId }),
      HttpIncomingMessage.withMaxBodySize(Option.some(defaultMaxBodyBytes))
    )
    const seconds = (performance.now() - start) / 1000
    const tags = { method: request.method, route: routeGroup(request.url), status: String(response.status) }
    yield* Metric.increment(Metric.taggedWithLabels(Telemetry.httpRequests, Object.entries(tags).map(([k, v]) => labelOf(k, v))))
    yield* Metric.update(Metric.taggedWithLabels(Telemetry.httpRequestDuration, [labelOf("route", tags.route)]), seconds)
    if (!request.url.startsWith("/health") && !request.url.startsWith("/metrics")) {
      yield* Effect.logInfo("http").pipe(
        Effect.annotateLogs({
          request_id: requestId,
          method: request.method,
          path: request.url.split("?")[0]!,
          status: response.status,
          duration_ms: Math.round(seconds * 1000 * 100) / 100
        })
      )
    }
    return response.pipe(
      HttpServerResponse.setHeaders({
        "x-request-id": requestId,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        ...(response.headers["x-frame-options"] ? {} : { "x-frame-options": "DENY" })
      })
    )
  })
)

const labelOf = (key: string, value: string) => MetricLabel.make(key, value)

/** `/health`, `/health/detailed` and `/metrics`, added to `Routes`. */
export const layerOperationalRoutes = (options: { readonly service: string; readonly version: string }) =>
  Routes.use((router) =>
    Effect.gen(function*() {
      const health = yield* Health
      const sources = yield* Telemetry.MetricSources
      const started = new Date()
      yield* router.get(
        "/health",
        Effect.map(health.run({ detailed: false }), (report) =>
          HttpServerResponse.unsafeJson(
            report.status === "healthy"
              ? { status: "healthy" }
              : { status: "unhealthy", failed: report.failed, errors: Object.fromEntries(report.failed.map((n) => [n, report.checks[n]?.error])) },
            { status: report.status === "healthy" ? 200 : 503, headers: { "cache-control": "no-store" } }
          ))
      )
      yield* router.get(
        "/health/detailed",
        Effect.map(health.run({ detailed: true }), (report) =>
          HttpServerResponse.unsafeJson(
            {
              status: report.status,
              service: options.service,
              version: options.version,
              started_at: started.toISOString(),
              uptime_seconds: Math.round(process.uptime()),
              memory: process.memoryUsage(),
              failed: report.failed,
              checks: report.checks
            },
            { status: report.status === "healthy" ? 200 : 503, headers: { "cache-control": "no-store" } }
          ))
      )
      yield* router.all("*", Effect.succeed(errorResponse(404, "not_found", "No such route")))
      yield* router.get(
        "/metrics",
        Effect.map(sources.sample, (gauges) =>
          HttpServerResponse.text(Telemetry.renderPrometheus([...Telemetry.processGauges(), ...gauges]), {
            contentType: "text/plain; version=0.0.4; charset=utf-8",
            headers: { "cache-control": "no-store" }
          }))
      )
    })
  )

/** Serve `Routes` on `host:port` with the middleware. */
export const layerServer = (options: { readonly host: string; readonly port: number }) =>
  Routes.serve(middleware).pipe(
    HttpServer.withLogAddress,
    Layer.provide(NodeHttpServer.layer(() => NodeHttp.createServer({ keepAliveTimeout: 65_000 }), { port: options.port, host: options.host }))
  )

/** Turn any app into a handler mounted under a prefix (for modules that build their own HttpApp). */
export const mount = (prefix: `/${string}`, app: HttpApp.Default<unknown, never>) =>
  Routes.use((router) => router.mountApp(prefix, app, { includePrefix: true }))
