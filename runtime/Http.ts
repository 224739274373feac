/**
 * The HTTP servers every role runs: the public one with the routes other folders contribute to
 * `Routes` plus `/health`, and the admin one (`TROUPE_ADMIN_HOST:TROUPE_ADMIN_PORT`, loopback by
 * default, optionally behind a bearer token) with `/health`, `/health/detailed` and `/metrics`.
 * Both run behind middleware for request ids, access logs, metrics, canonical paths, security
 * headers, body limits and JSON errors.
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
import * as FindMyWay from "find-my-way-ts"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as NodeCrypto from "node:crypto"
import * as NodeHttp from "node:http"
import * as Redacted from "effect/Redacted"
import { Health } from "./Health.ts"
import * as SecurityHeaders from "./SecurityHeaders.ts"
import * as Telemetry from "./Telemetry.ts"

/** The router other folders add their routes to (`Routes.use((router) => router.get(...))`). */
export class Routes extends HttpRouter.Tag("troupe/runtime/Http/Routes")<Routes>() {}

/** The router of the admin listener (operational routes only). */
export class AdminRoutes extends HttpRouter.Tag("troupe/runtime/Http/AdminRoutes")<AdminRoutes>() {}

/** The JSON error body every endpoint uses: `{"error":{"code","message","details?"}}`. */
export const errorResponse = (status: number, code: string, message: string, details?: unknown) =>
  HttpServerResponse.unsafeJson({ error: details === undefined ? { code, message } : { code, message, details } }, { status })

/** Default request body limit (routes that take uploads raise it for themselves). */
export const defaultMaxBodyBytes = 1024 * 1024

const largeBodyPaths = new Set<string>()

/**
 * Let requests to `path` (exactly, without its query) declare bodies over `defaultMaxBodyBytes`:
 * the route that takes them streams them and enforces its own limit.
 */
export const allowLargeBodies = (path: string): void => {
  largeBodyPaths.add(path)
}

const mayBeLarge = (url: string) => largeBodyPaths.has(url.split("?")[0]!)

const requestIdRe = /^[A-Za-z0-9._-]{1,128}$/

/**
 * Route templates (`/v1/chats/:id/events`) for metric labels: the routes of the router being served
 * and the ones modules register for apps they mount whole (the gateway's HTTP API). A path matches
 * its template, never a raw id, so labels stay bounded; a path no route takes is `unmatched`.
 */
const registeredTemplates: Array<{ readonly method: string; readonly path: string }> = []
let templateMatcher: { readonly router: FindMyWay.Router<string>; readonly served: ServedRoutes | undefined } | undefined

/** What the middleware reads of the router it serves: its routes and mounted prefixes. */
export interface ServedRoutes {
  readonly routes: Iterable<{ readonly method: string; readonly path: string }>
  readonly mounts: Iterable<readonly [string, ...ReadonlyArray<unknown>]>
}

/** Add route templates (method and path as the router spells them, `:param` for parameters). */
export const registerRouteTemplates = (routes: Iterable<{ readonly method: string; readonly path: string }>): Effect.Effect<void> =>
  Effect.sync(() => {
    for (const r of routes) registeredTemplates.push(r)
    templateMatcher = undefined
  })

const buildMatcher = (served: ServedRoutes | undefined): FindMyWay.Router<string> => {
  const router = FindMyWay.make<string>({ caseSensitive: true, ignoreTrailingSlash: false })
  const add = (method: string, path: string) => {
    if (!path.startsWith("/") && path !== "*") return
    try {
      if (method === "*") router.all(path as FindMyWay.PathInput, path)
      else router.on(method.toUpperCase(), path as FindMyWay.PathInput, path)
    } catch {
      // the same template twice (a route and a registered one): the first stays
    }
  }
  for (const r of registeredTemplates) add(r.method, r.path)
  if (served) {
    for (const r of served.routes) add(r.method, r.path)
    for (const [prefix] of served.mounts) add("*", `${prefix}/*`)
  }
  return router
}

/** The route template a request matched (`unmatched` when none did), for metric labels. */
export const routeTemplate = (served: ServedRoutes | undefined, method: string, url: string): string => {
  if (templateMatcher === undefined || templateMatcher.served !== served) templateMatcher = { router: buildMatcher(served), served }
  const path = url.split("?")[0]!
  const found = templateMatcher.router.find(method.toUpperCase(), path) ?? (method.toUpperCase() === "HEAD" ? templateMatcher.router.find("GET", path) : undefined)
  return found?.handler ?? "unmatched"
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

const unreservedEscape = /%(?:3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|2e|5f|7e)/i

/**
 * Whether a request path is spelled the one way routing and rate limits expect: absolute, no
 * empty, `.` or `..` segments, no backslash, no malformed escapes and no percent-encoded
 * characters that have a plain spelling (`%61` for `a`). Anything else answers 404 before
 * routing, so `/v1//auth/login` or `/v1/%61uth/login` can never reach a route under another name.
 */
export const isCanonicalPath = (url: string): boolean => {
  const q = url.indexOf("?")
  const path = q === -1 ? url : url.slice(0, q)
  if (path === "*") return true
  if (!path.startsWith("/") || path.includes("//") || path.includes("\\")) return false
  if (/%(?![0-9a-f]{2})/i.test(path) || unreservedEscape.test(path)) return false
  return !path.split("/").some((segment) => segment === "." || segment === "..")
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
export const makeMiddleware = (options: SecurityHeaders.Options = { hsts: false }, served?: ServedRoutes) => HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const incoming = request.headers["x-request-id"]
    const requestId = incoming && requestIdRe.test(incoming) ? incoming : NodeCrypto.randomUUID()
    const start = performance.now()
    let status = 0
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.sync(() => {
        const finished = SecurityHeaders.apply(HttpServerResponse.setHeader(withErrorBody(response, requestId), "x-request-id", requestId), options)
        status = finished.status
        return finished
      })
    )
    const declared = Number(request.headers["content-length"] ?? "0")
    const exit = yield* (!isCanonicalPath(request.url)
      ? Effect.succeed(errorResponse(404, "not_found", "No such route"))
      : declared > defaultMaxBodyBytes && !request.headers["x-troupe-large-body"] && !mayBeLarge(request.url)
      ? Effect.succeed(errorResponse(413, "payload_too_large", `Request body larger than ${defaultMaxBodyBytes} bytes`))
      // routes match their exact spelling: /v1/AUTH/login is not /v1/auth/login
      : HttpRouter.withRouterConfig(app, { caseSensitive: true })).pipe(
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
    const route = isCanonicalPath(request.url) ? routeTemplate(served, request.method, request.url) : "unmatched"
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

/** The middleware without HSTS (tests, tools). */
export const middleware = makeMiddleware()

const labelOf = (key: string, value: string) => MetricLabel.make(key, value)

const healthRoute = Effect.map(Effect.flatMap(Health, (health) => health.run({ detailed: false })), (report) =>
  HttpServerResponse.unsafeJson(
    report.status === "healthy"
      ? { status: "healthy" }
      : { status: "unhealthy", failed: report.failed, errors: Object.fromEntries(report.failed.map((n) => [n, report.checks[n]?.error])) },
    { status: report.status === "healthy" ? 200 : 503, headers: { "cache-control": "no-store" } }
  ))

/** `/health`, added to the public `Routes` (load balancers and container health checks use it). */
export const layerOperationalRoutes = (_options?: { readonly service: string; readonly version: string }) =>
  Routes.use((router) => Effect.flatMap(Health, (health) => router.get("/health", Effect.provideService(healthRoute, Health, health))))

/** Where the admin listener listens, and the bearer token its routes need (if any). */
export interface AdminOptions {
  readonly host: string
  readonly port: number
  readonly token: Option.Option<Redacted.Redacted>
}

const bearerMatches = (header: string | undefined, token: Redacted.Redacted): boolean => {
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1]
  if (presented === undefined) return false
  const digest = (s: string) => NodeCrypto.createHash("sha256").update(s).digest()
  return NodeCrypto.timingSafeEqual(digest(presented), digest(Redacted.value(token)))
}

/** `/health`, `/health/detailed` and `/metrics` on the admin router; the last two need the token when one is set. */
export const layerAdminRoutes = (options: { readonly service: string; readonly version: string; readonly token: Option.Option<Redacted.Redacted> }) =>
  AdminRoutes.use((router) =>
    Effect.gen(function*() {
      const health = yield* Health
      const sources = yield* Telemetry.MetricSources
      const started = new Date()
      const guarded = <E, R>(route: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
        Option.match(options.token, {
          onNone: () => route,
          onSome: (token) =>
            Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
              bearerMatches(request.headers.authorization, token)
                ? route
                : Effect.succeed(HttpServerResponse.setHeader(errorResponse(401, "unauthorized", "Send Authorization: Bearer <TROUPE_METRICS_TOKEN>"), "www-authenticate", "Bearer")))
        })
      yield* router.get("/health", Effect.provideService(healthRoute, Health, health))
      yield* router.get(
        "/health/detailed",
        guarded(Effect.map(health.run({ detailed: true }), (report) =>
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
          )))
      )
      yield* router.get(
        "/metrics",
        guarded(Effect.map(sources.sample, (gauges) =>
          HttpServerResponse.text(Telemetry.renderPrometheus([...Telemetry.processGauges(), ...gauges]), {
            contentType: "text/plain; version=0.0.4; charset=utf-8",
            headers: { "cache-control": "no-store" }
          })))
      )
    })
  )

/** The admin listener: `layerAdminRoutes` served on `host:port` (logs the address it bound). */
export const layerAdminServer = (options: AdminOptions & { readonly service: string; readonly version: string }) =>
  AdminRoutes.unwrap((router) => HttpServer.serve(router, makeMiddleware({ hsts: false }, router))).pipe(
    HttpServer.withLogAddress,
    Layer.provide(layerAdminRoutes(options)),
    Layer.provide(NodeHttpServer.layer(() => NodeHttp.createServer({ keepAliveTimeout: 65_000 }), { port: options.port, host: options.host }))
  )

/** Serve `Routes` on `host:port` with the middleware (HSTS when the public URL is https). */
export const layerServer = (options: { readonly host: string; readonly port: number; readonly hsts?: boolean }) =>
  Routes.unwrap((router) => HttpServer.serve(router, makeMiddleware({ hsts: options.hsts ?? false }, router))).pipe(
    HttpServer.withLogAddress,
    Layer.provide(NodeHttpServer.layer(() => NodeHttp.createServer({ keepAliveTimeout: 65_000 }), { port: options.port, host: options.host }))
  )

/** Turn any app into a handler mounted under a prefix (for modules that build their own HttpApp). */
export const mount = (prefix: `/${string}`, app: HttpApp.Default<unknown, never>) =>
  Routes.use((router) => router.mountApp(prefix, app, { includePrefix: true }))
