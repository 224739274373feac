/**
 * The gateway as layers: the API's handlers and middleware, mounted on the runtime's `Routes`
 * under `/v1` (with `/v1/openapi.json`), the docs page at `/docs`, and the web app (`WebApp.ts`)
 * on every other GET path, share pages `/s/…` included.
 *
 * Middleware around every API route, outermost first: CORS (allowlist), then per-client-address
 * rate limits (stricter on `/v1/auth/*`), the body checks of `Body.ts` (size, JSON content type,
 * nesting depth), `Cache-Control: no-store`, and the rendering of every failure as
 * `{"error":{"code","message","details?"}}` — including schema decoding failures (400 with each
 * field's path, quoting at most a short prefix of the offending value) and malformed JSON (400,
 * never 500). The API's router matches paths case-sensitively, and the runtime refuses
 * non-canonical spellings before routing, so a limit keyed on the path is keyed on the route.
 */
import type * as Sharding from "@effect/cluster/Sharding"
import * as PreviewSessions from "../preview/Sessions.ts"
import * as UploadsAccess from "../uploads/Access.ts"
import { AttachmentNews, Chat } from "../entities/chat/protocol.ts"
import * as Policy from "./Policy.ts"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpApiSwagger from "@effect/platform/HttpApiSwagger"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { Cache, RedisConnection } from "../runtime/Cache.ts"
import type { TroupeConfig } from "../runtime/Config.ts"
import type { Health } from "../runtime/Health.ts"
import { TroupeConfig as TroupeConfigTag } from "../runtime/Config.ts"
import { errorResponse, registerRouteTemplates, Routes } from "../runtime/Http.ts"
import * as SecurityHeaders from "../runtime/SecurityHeaders.ts"
import * as UserDirectory from "../entities/user/directory.ts"
import * as Prices from "../skills/ai/Prices.ts"
import type { Skills } from "../skills/Skills.ts"
import type * as SqlClient from "@effect/sql/SqlClient"
import { TroupeApi } from "./Api.ts"
import * as Auth from "./Auth.ts"
import * as Body from "./Body.ts"
import { GatewayConfig } from "./Config.ts"
import * as GatewayConfigModule from "./Config.ts"
import { ApiFailure } from "./Errors.ts"
import * as FirstRun from "./FirstRun.ts"
import { clientIp } from "./handlers/common.ts"
import * as Handlers from "./handlers/index.ts"
import * as OpenAiWire from "./openai/wire.ts"
import * as Mailer from "./Mailer.ts"
import { RateLimiter } from "./RateLimit.ts"
import * as RateLimit from "./RateLimit.ts"
import * as Tokens from "./Tokens.ts"
import * as WebApp from "./WebApp.ts"
import * as Mcp from "./mcp/Server.ts"
import * as StoreHandlers from "./handlers/store.ts"
import type * as Store from "../skills/store/Store.ts"

/** A failure as the standard error response. */
export const render = (f: ApiFailure) => {
  const response = errorResponse(f.status, f.code, f.message, f.details)
  return f.headers ? HttpServerResponse.setHeaders(response, f.headers) : response
}

/** How much of an offending value an error message may quote. */
const quotedPrefix = 24

/**
 * A validation message that quotes at most a short prefix of the offending value (`actual "…"`)
 * and is itself bounded, so an error never echoes a request back.
 */
export const briefMessage = (message: string): string => {
  const cut = message.replace(/actual ([\s\S]*)$/, (_, value: string) =>
    `actual ${value.length > quotedPrefix ? `${value.slice(0, quotedPrefix)}…` : value}`)
  const line = cut.replace(/\s+/g, " ").trim()
  return line.length > 200 ? `${line.slice(0, 200)}…` : line
}

const decodeFailure = (e: HttpApiDecodeError) => {
  const issues = e.issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join(".").slice(0, 100), message: briefMessage(i.message) }))
  return render(new ApiFailure({
    status: 400,
    code: "invalid_request",
    message: issues[0] ? `${issues[0].path.length > 0 ? issues[0].path + ": " : ""}${issues[0].message}` : "Invalid request",
    details: { issues }
  }))
}

/** The docs page's policy, computed from the page once (its inline script and style by hash). */
let docsPolicy: string | undefined
const withDocsPolicy = (response: HttpServerResponse.HttpServerResponse) => {
  if (response.body._tag !== "Uint8Array" || !/^text\/html/.test(response.body.contentType)) return response
  docsPolicy ??= SecurityHeaders.htmlPolicy(new TextDecoder().decode(response.body.body))
  return HttpServerResponse.setHeader(response, "content-security-policy", docsPolicy)
}

/** A defect of reading the body: malformed JSON or too large; undefined for other defects. */
const bodyDefect = (defect: unknown, maxBodyBytes: number) => {
  if (typeof defect === "object" && defect !== null && (defect as { _tag?: unknown })._tag === "MultipartError") {
    return render(new ApiFailure({ status: 415, code: "unsupported_media_type", message: "Send JSON bodies with Content-Type: application/json" }))
  }
  if (!HttpServerError.isServerError(defect) || defect._tag !== "RequestError") return undefined
  const cause = defect.cause as Error | undefined
  if (cause?.message === "maxBytes exceeded") {
    return render(new ApiFailure({ status: 413, code: "payload_too_large", message: `Request body larger than ${maxBodyBytes} bytes` }))
  }
  return render(new ApiFailure({ status: 400, code: "invalid_json", message: "The body must be valid JSON (send {} when there is nothing to say)" }))
}

/** Rate limits, body limits, headers and error rendering around the API. */
const layerGlobalMiddleware = HttpApiBuilder.middleware(
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const limiter = yield* RateLimiter
    return (app: HttpApp.Default) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const ip = clientIp(request, config.trustProxy)
        yield* limiter.consume("ip", ip)
        if (request.url.startsWith("/v1/auth/")) yield* limiter.consume("auth", ip)
        const prepared = yield* Body.prepare(request, config.maxBodyBytes)
        const response = yield* app.pipe(
          HttpIncomingMessage.withMaxBodySize(Option.some(config.maxBodyBytes)),
          Effect.provideService(HttpServerRequest.HttpServerRequest, prepared)
        )
        const shown = request.url === "/docs" || request.url.startsWith("/docs?") ? withDocsPolicy(response) : response
        return shown.headers["cache-control"] ? shown : HttpServerResponse.setHeader(shown, "cache-control", "no-store")
      }).pipe(
        Effect.catchAllCause((cause) =>
          Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
            // the OpenAI-compatible routes answer in OpenAI's error shape
            const shape = OpenAiWire.isOpenAiRoute(request.url) ? OpenAiWire.reshapeError : (r: HttpServerResponse.HttpServerResponse) => r
            const failure = Cause.failureOption(cause)
            if (Option.isSome(failure)) {
              const e: unknown = failure.value
              if (e instanceof ApiFailure) return Effect.succeed(OpenAiWire.isOpenAiRoute(request.url) ? OpenAiWire.errorResponse(e.status, e.code, e.message, e.headers) : render(e))
              if (e instanceof HttpApiDecodeError) return Effect.succeed(shape(decodeFailure(e)))
            }
            for (const defect of Cause.defects(cause)) {
              const response = bodyDefect(defect, config.maxBodyBytes)
              if (response) return Effect.succeed(shape(response))
            }
            return Effect.failCause(cause as Cause.Cause<never>)
          })
        )
      )
  })
)

/** CORS for the configured origins (none: no cross-origin access at all). */
const layerCors = Layer.unwrapEffect(
  Effect.map(GatewayConfig, (config) =>
    config.corsOrigins.length === 0
      ? Layer.empty
      : HttpApiBuilder.middleware(HttpMiddleware.cors({
        // a predicate, so only an allowed request origin is ever echoed back
        allowedOrigins: (origin: string) => config.corsOrigins.includes(origin),
        allowedMethods: ["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allowedHeaders: ["authorization", "content-type", "x-csrf-token", "last-event-id", "x-request-id"],
        exposedHeaders: ["x-request-id", "retry-after"],
        credentials: true,
        maxAge: 600
      })))
)

/** The API with every group's handlers. */
const layerApi = HttpApiBuilder.api(TroupeApi).pipe(
  Layer.provide(Handlers.layer),
  Layer.provide(Auth.layer)
)

/** The services the handlers use. */
const layerServices = Layer.mergeAll(Tokens.layer, RateLimit.layer, Mailer.layer)

/** What the gateway needs from the role: cluster membership (client is enough), the platform, skills. */
export type Requirements = Sharding.Sharding | SqlClient.SqlClient | Cache | RedisConnection | Skills | GatewayConfig | Store.Store | TroupeConfig | Health

/** The API's endpoints as `{ method, path }` with `:param` templates (`/v1/chats/:id/events`). */
export const apiRouteTemplates = (): ReadonlyArray<{ readonly method: string; readonly path: string }> => {
  const templates: Array<{ readonly method: string; readonly path: string }> = []
  HttpApi.reflect(TroupeApi, { onGroup: () => {}, onEndpoint: ({ endpoint }) => void templates.push({ method: endpoint.method, path: endpoint.path }) })
  return templates
}

/** The version the MCP server announces. */
const mcpVersion = "1.0.0"

/** The gateway's routes on `Routes`, given its configuration. */
export const layerWith: Layer.Layer<never, unknown, Requirements | Routes> = Routes.use((router) =>
  Effect.gen(function*() {
    // the API's routes match their exact spelling (the library's default ignores case)
    const app = yield* HttpApiBuilder.httpApp.pipe(HttpRouter.withRouterConfig({ caseSensitive: true }))
    // app store blobs are raw and large: outside the JSON API (mounted before it), authenticated the same way
    const services = yield* Effect.context<Tokens.Tokens | RateLimiter | Sharding.Sharding | Store.Store>()
    yield* router.mountApp(StoreHandlers.uploadPrefix, Effect.provide(StoreHandlers.uploadRoute, services), { includePrefix: true })
    // the MCP server (JSON-RPC over Streamable HTTP): skills as tools, billed as REST calls
    const mcpServices = yield* Effect.context<Mcp.Requirements>()
    yield* router.mountApp(Mcp.path, Effect.provide(Mcp.route(mcpVersion), mcpServices), { includePrefix: true })
    yield* router.mountApp("/v1", app, { includePrefix: true })
    // metrics label the API's requests by its route templates (the API is mounted whole)
    yield* registerRouteTemplates(apiRouteTemplates())
    yield* router.mountApp("/docs", app, { includePrefix: true })
    // the web app: every other GET path (client routes get index.html)
    yield* WebApp.mount(router, WebApp.load())
  })
).pipe(
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/v1/openapi.json" })),
  Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
  Layer.provide(layerCors),
  Layer.provide(layerGlobalMiddleware),
  Layer.provide(layerApi),
  Layer.provide(HttpApiBuilder.Router.Live),
  Layer.provide(HttpApiBuilder.Middleware.layer),
  Layer.provide(layerServices),
  Layer.provide(FirstRun.layer),
  Layer.provide(UserDirectory.layer),
  Layer.provide(Prices.layerFromEnv)
)

/** The gateway's configuration from the environment (read when the role starts). */
export const layerConfig: Layer.Layer<GatewayConfig, unknown, TroupeConfig> = Layer.effect(
  GatewayConfig,
  Effect.flatMap(TroupeConfigTag, GatewayConfigModule.fromEnv)
)

/**
 * The gateway's sessions for the preview service embedded beside it (`troupe start`): a request
 * signed in to the API (access token, cookie, or API key) may use the preview endpoints.
 */
export const layerPreviewSessionsWith: Layer.Layer<PreviewSessions.Sessions, never, GatewayConfig | Sharding.Sharding | Cache | RedisConnection | SqlClient.SqlClient> = Layer.effect(
  PreviewSessions.Sessions,
  Effect.gen(function*() {
    const context = yield* Effect.context<Tokens.Tokens | RateLimiter | Sharding.Sharding>()
    return PreviewSessions.Sessions.of({
      signedIn: (request) => Auth.authenticate(request).pipe(Effect.provide(context), Effect.as(true), Effect.orElseSucceed(() => false))
    })
  })
).pipe(Layer.provide(layerServices), Layer.provide(UserDirectory.layer))

/**
 * What the uploads service needs from the gateway: its callers authenticated as the API's are
 * (sessions, cookies with CSRF, API keys — scope `chats` to upload, `chats` or `read` to read), and
 * the chats told when an attachment is ready or rejected.
 */
export const layerUploadsAccessWith: Layer.Layer<UploadsAccess.Authenticator | UploadsAccess.ChatNotifier, never, GatewayConfig | Sharding.Sharding | Cache | RedisConnection | SqlClient.SqlClient> = Layer.merge(
  Layer.effect(
    UploadsAccess.Authenticator,
    Effect.gen(function*() {
      const context = yield* Effect.context<Tokens.Tokens | RateLimiter | Sharding.Sharding>()
      return UploadsAccess.Authenticator.of({
        authenticate: (request) =>
          Auth.authenticate(request).pipe(
            Effect.provide(context),
            Effect.map((principal) => ({
              userId: principal.userId,
              mayWrite: Policy.allows(principal, Policy.WriteChats),
              mayRead: Policy.allows(principal, Policy.ReadChats)
            })),
            Effect.mapError((e) => ({ status: e.status, code: e.code, message: e.message, ...(e.headers ? { headers: { ...e.headers } } : {}) }))
          )
      })
    })
  ),
  Layer.effect(
    UploadsAccess.ChatNotifier,
    Effect.map(Chat.client, (chats) =>
      UploadsAccess.ChatNotifier.of({
        notify: (chatId, ownerId, news) =>
          chats(chatId).Attachment(
            new AttachmentNews(
              news.kind === "attachment_ready"
                ? { byUserId: ownerId, uploadId: news.uploadId, status: "ready", name: news.name.slice(0, 255), contentType: news.contentType }
                : { byUserId: ownerId, uploadId: news.uploadId, status: "rejected", name: news.name.slice(0, 255), contentType: "", code: news.code.slice(0, 64), message: news.message.slice(0, 1000) }
            )
          ).pipe(Effect.catchAllCause((cause) => Effect.logWarning("a chat was not told about its attachment", cause)))
      }))
  )
).pipe(Layer.provide(layerServices), Layer.provide(UserDirectory.layer))

/** `layerUploadsAccessWith` with the gateway's configuration from the environment. */
export const layerUploadsAccess = layerUploadsAccessWith.pipe(Layer.provide(layerConfig))

/** `layerPreviewSessionsWith` with the gateway's configuration from the environment. */
export const layerPreviewSessions = layerPreviewSessionsWith.pipe(Layer.provide(layerConfig))

/** The gateway as the roles mount it (`app.routes`). */
export const layer: Layer.Layer<never, unknown, Exclude<Requirements, GatewayConfig> | TroupeConfig | Routes> = layerWith.pipe(Layer.provide(layerConfig))
