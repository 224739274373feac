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

const defaultErrorCodes: Record<number, readonly [string, string]> = {
  400: ["bad_request", "Malformed request"],
  401: ["unauthorized", "Authentication required"],
  403: ["forbidden", "Not allowed"],
  404: ["not_found", "No such route"],
  405: ["method_not_allowed", "Method not allowed"],
  413: ["payload_too_large", "Request body too large"],
  415: ["unsupported_media_type", "Unsupported media type"],
  429: ["rate_limited", "Too many requests"],
  500: ["internal_error", "Internal error"],
  503: ["unavailable", "Service unavailable"]
}

/** Give an error response without a body the standard JSON error body. */
const withErrorBody = (response: HttpServerResponse.HttpServerResponse, requestId: string) => {
  if (response.status < 400 || response.body._tag !== "Empty") return response
  const [code, message] = defaultErrorCodes[response.status] ?? (response.status >= 500 ? ["internal_error", "Internal error"] : ["error", "Request failed"])
  return HttpServerResponse.unsafeJson(
    { error: response.status >= 500 ? { code, message, details: { request_id: requestId } } : { code, message } },
    { status: response.status, headers: response.headers }
  )
}

/**
 * Request ids, access logs, metrics, security headers, body limits and JSON error bodies
 * around an app. Responses are finished in a pre-response handler because the server sends
 * the response before the middleware regains control.
 */
export const middleware = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const incoming = request.headers["x-request-id"]
    const requestId = incoming && requestIdRe.test(incoming) ? incoming : NodeCrypto.randomUUID()
    const start = performance.now()
    let status = 0
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.sync(() => {
        const finished = withErrorBody(response, requestId).pipe(
          HttpServerResponse.setHeaders({
            "x-request-id": requestId,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            ...(response.headers["x-frame-options"] ? {} : { "x-frame-options": "DENY" })
          })
        )
        status = finished.status
        return finished
      })
    )
    const declared = Number(request.headers["content-length"] ?? "0")
    const exit = yield* (declared > defaultMaxBodyBytes && !request.headers["x-troupe-large-body"]
      ? Effect.succeed(errorResponse(413, "payload_too_large", `Request body larger than ${defaultMaxBodyBytes} bytes`))
      : app).pipe(
        Effect.annotateLogs({ request_id: requestId }),
        HttpIncomingMessage.withMaxBodySize(Option.some(defaultMaxBodyBytes)),
        Effect.exit
      )
    if (exit._tag === "Failure" && !Cause.isInterruptedOnly(exit.cause)) {
      const failure = Cause.failureOption(exit.cause)
      const expected = Option.isSome(failure) && HttpServerError.isServerError(failure.value)
      if (!expected) yield* Effect.logError("Unhandled error", exit.cause).pipe(Effect.annotateLogs({ request_id: requestId }))
    }
    const seconds = (performance.now() - start) / 1000
    const route = routeGroup(request.url)
    const statusText = String(status || (exit._tag === "Success" ? exit.value.status : 500))
    yield* Metric.increment(Metric.taggedWithLabels(Telemetry.httpRequests, [labelOf("method", request.method), labelOf("route", route), labelOf("status", statusText)]))
    yield* Metric.update(Metric.taggedWithLabels(Telemetry.httpRequestDuration, [labelOf("route", route)]), seconds)
    if (!request.url.startsWith("/health") && !request.url.startsWith("/metrics")) {
      yield* Effect.logInfo("http").pipe(
        Effect.annotateLogs({
          request_id: requestId,
          method: request.method,
          path: request.url.split("?")[0]!,
          status: Number(statusText),
          duration_ms: Math.round(seconds * 1000 * 100) / 100
        })
      )
    }
    return yield* exit
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
