/**
 * The preview HTTP endpoints, added to the runtime's `Routes`:
 *
 * - `GET /api/v1/image?url=&max_width=&max_height=&quality=&format=&refresh=`
 * - `GET /api/v1/favicon?url=&size=&refresh=`
 * - `POST /api/v1/metadata {"url"}` and `GET /api/v1/metadata?url=&refresh=`
 *
 * Who may call them is `Policy.ts`'s decision (a key, a signed URL, the app's session, or
 * anonymous use when the operator opted in). Every answer carries CORS headers; images and metadata carry `Cache-Control` and `ETag`, and
 * `If-None-Match` gets a 304. Errors are the standard JSON error with a machine-readable code.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import * as Health from "../runtime/Health.ts"
import * as Http from "../runtime/Http.ts"
import * as Telemetry from "../runtime/Telemetry.ts"
import { PreviewConfig } from "./Config.ts"
import type { OutputFormat } from "./engine/Engine.ts"
import * as Policy from "./Policy.ts"
import { Preview, PreviewError, type Served } from "./Preview.ts"
import { Sessions } from "./Sessions.ts"

const MAX_URL_LENGTH = 4096
const MAX_DIMENSION = 16_384

const bad = (code: string, message: string) => new PreviewError({ status: 400, code, message })

const intParam = (params: URLSearchParams, name: string, fallback: number, min: number, max: number): Effect.Effect<number, PreviewError> => {
  const raw = params.get(name)
  if (raw === null || raw === "") return Effect.succeed(fallback)
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) {
    return Effect.fail(bad("invalid_parameter", `${name} must be an integer between ${min} and ${max}`))
  }
  return Effect.succeed(Number(raw))
}

const urlParam = (raw: string | null | undefined): Effect.Effect<string, PreviewError> => {
  if (raw === null || raw === undefined || raw.trim() === "") return Effect.fail(bad("missing_url", "the url parameter is required"))
  if (raw.length > MAX_URL_LENGTH) return Effect.fail(bad("invalid_url", `url is longer than ${MAX_URL_LENGTH} characters`))
  let url: URL
  try {
    url = new URL(raw.trim())
  } catch {
    return Effect.fail(bad("invalid_url", "url must be an absolute http(s) URL"))
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Effect.fail(bad("blocked_scheme", `scheme ${url.protocol.replace(/:$/, "")} is not allowed (http and https only)`))
  }
  url.hash = ""
  url.username = ""
  url.password = ""
  return Effect.succeed(url.href)
}

const boolParam = (params: URLSearchParams, name: string) => {
  const v = (params.get(name) ?? "").toLowerCase()
  return v === "1" || v === "true" || v === "yes"
}

const FORMATS: Record<string, OutputFormat> = { jpeg: "jpeg", jpg: "jpeg", webp: "webp", png: "png" }

const MetadataBody = Schema.Struct({ url: Schema.String, refresh: Schema.optional(Schema.Boolean) })

/** Add the preview endpoints to `Routes` (registers a `preview` health check and gauges when those services exist). */
export const layer: Layer.Layer<never, never, Http.Routes | Preview | PreviewConfig> = Http.Routes.use((router) =>
  Effect.gen(function*() {
    const preview = yield* Preview
    const config = yield* PreviewConfig
    const policy = Policy.make(config.security)
    const cors = config.security.corsOrigins
    const sessions = yield* Effect.serviceOption(Sessions)
    const runtime = yield* Effect.runtime<never>()

    const health = yield* Effect.serviceOption(Health.Health)
    if (Option.isSome(health)) {
      yield* health.value.register({
        name: "preview",
        check: Effect.flatMap(preview.stats, (s) =>
          s.pool.ready > 0 || s.pool.start_failures === 0
            ? Effect.void
            : Effect.fail(new Error(`no image worker could start: ${s.pool.last_start_error ?? "unknown"}`))),
        details: Effect.map(preview.stats, (stats): Record<string, unknown> => ({ ...stats }))
      })
    }
    const sources = yield* Effect.serviceOption(Telemetry.MetricSources)
    if (Option.isSome(sources)) {
      // read when scraped, so the first scrape shows the pool as it is
      yield* sources.value.registerEffect(Effect.map(preview.stats, (s) => {
        const gauges: Array<Telemetry.GaugeSample> = [
          { name: "preview_pool_workers_ready", help: "Image workers ready", value: s.pool.ready },
          { name: "preview_pool_workers_busy", help: "Image workers busy", value: s.pool.busy },
          { name: "preview_pool_queued", help: "Images waiting for a worker", value: s.pool.queued },
          { name: "preview_pool_recycled_total", help: "Image workers replaced (memory, quota, crash, timeout)", value: s.pool.recycled, type: "counter" },
          { name: "preview_pool_timeouts_total", help: "Image jobs that timed out", value: s.pool.timeouts, type: "counter" }
        ]
        for (const [kind, k] of Object.entries(s.cache) as Array<[string, { bytes: number; entries: number; hits: number; misses: number }]>) {
          gauges.push(
            { name: "preview_cache_bytes", help: "Bytes in the preview disk cache", labels: { kind }, value: k.bytes },
            { name: "preview_cache_entries", help: "Entries in the preview disk cache", labels: { kind }, value: k.entries },
            { name: "preview_cache_hits_total", help: "Preview cache hits", labels: { kind }, value: k.hits, type: "counter" },
            { name: "preview_cache_misses_total", help: "Preview cache misses", labels: { kind }, value: k.misses, type: "counter" }
          )
        }
        return gauges
      }))
    }

    /** Run the policy, then the handler; map typed errors to JSON errors with CORS headers. */
    const guarded = (handler: (request: HttpServerRequest.HttpServerRequest, url: URL) => Effect.Effect<HttpServerResponse.HttpServerResponse, PreviewError>) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const url = new URL(request.url, "http://preview.local")
        const origin = request.headers["origin"]
        const headers = Policy.corsHeaders(origin, cors)
        const signedIn = Option.map(sessions, (s) => () => Runtime.runPromise(runtime)(s.signedIn(request)))
        const refusal = yield* Effect.promise(() =>
          policy.check({ method: request.method, url, headers: request.headers, remoteAddress: Option.getOrUndefined(request.remoteAddress) }, Option.getOrUndefined(signedIn))
        )
        if (refusal) {
          return Http.errorResponse(refusal.status, refusal.code, refusal.message).pipe(HttpServerResponse.setHeaders({ ...headers, ...refusal.headers }))
        }
        const response = yield* handler(request, url).pipe(
          Effect.catchTag("PreviewError", (e) =>
            Effect.succeed(
              Http.errorResponse(e.status, e.code, e.message, e.details).pipe(
                HttpServerResponse.setHeader("cache-control", "no-store")
              )
            ))
        )
        return HttpServerResponse.setHeaders(response, headers)
      })

    const preflight = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      return HttpServerResponse.empty({ status: 204, headers: Policy.preflightHeaders(request.headers["origin"], cors) })
    })

    const notModified = (request: HttpServerRequest.HttpServerRequest, etag: string) => {
      const inm = request.headers["if-none-match"]
      return inm !== undefined && inm.split(",").map((t) => t.trim().replace(/^W\//, "")).some((t) => t === etag || t === "*")
    }

    const binary = (request: HttpServerRequest.HttpServerRequest, served: Served) => {
      const headers = {
        etag: served.etag,
        "cache-control": `public, max-age=${served.maxAgeSeconds}`,
        "x-preview-cache": served.cache,
        "content-security-policy": "default-src 'none'; sandbox",
        "cross-origin-resource-policy": "cross-origin",
        ...(typeof served.extra["width"] === "number" ? { "x-image-width": String(served.extra["width"]), "x-image-height": String(served.extra["height"]) } : {})
      }
      if (notModified(request, served.etag)) return HttpServerResponse.empty({ status: 304, headers })
      return HttpServerResponse.uint8Array(served.body, { contentType: served.contentType, headers })
    }

    const image = guarded((request, url) =>
      Effect.gen(function*() {
        const params = url.searchParams
        const target = yield* urlParam(params.get("url"))
        const maxWidth = yield* intParam(params, "max_width", config.image.defaultMaxWidth, 0, MAX_DIMENSION)
        const maxHeight = yield* intParam(params, "max_height", config.image.defaultMaxHeight, 0, MAX_DIMENSION)
        const quality = yield* intParam(params, "quality", config.image.defaultQuality, 1, 100)
        const formatRaw = (params.get("format") ?? "webp").toLowerCase()
        const format = FORMATS[formatRaw]
        if (!format) return yield* Effect.fail(bad("invalid_parameter", "format must be jpeg, webp or png"))
        const served = yield* preview.image({ url: target, maxWidth, maxHeight, quality, format, refresh: boolParam(params, "refresh") })
        return binary(request, served)
      })
    )

    const favicon = guarded((request, url) =>
      Effect.gen(function*() {
        const params = url.searchParams
        const target = yield* urlParam(params.get("url"))
        const size = yield* intParam(params, "size", 128, 16, 512)
        const served = yield* preview.favicon({ url: target, size, refresh: boolParam(params, "refresh") })
        return binary(request, served)
      })
    )

    const metadataResponse = (request: HttpServerRequest.HttpServerRequest, target: string, refresh: boolean) =>
      Effect.gen(function*() {
        const served = yield* preview.metadata(target, refresh)
        const headers = { etag: served.etag, "cache-control": `public, max-age=${served.maxAgeSeconds}`, "x-preview-cache": served.cache }
        if (notModified(request, served.etag)) return HttpServerResponse.empty({ status: 304, headers })
        return HttpServerResponse.unsafeJson(served.metadata, { headers })
      })

    const metadataGet = guarded((request, url) =>
      Effect.gen(function*() {
        const target = yield* urlParam(url.searchParams.get("url"))
        return yield* metadataResponse(request, target, boolParam(url.searchParams, "refresh"))
      })
    )

    const metadataPost = guarded((request, url) =>
      Effect.gen(function*() {
        const body = yield* request.json.pipe(
          Effect.flatMap(Schema.decodeUnknown(MetadataBody)),
          Effect.mapError(() => bad("invalid_body", "the body must be JSON like {\"url\": \"https://…\"}"))
        )
        const target = yield* urlParam(body.url)
        return yield* metadataResponse(request, target, body.refresh === true || boolParam(url.searchParams, "refresh"))
      })
    )

    yield* router.get("/api/v1/image", image)
    yield* router.get("/api/v1/favicon", favicon)
    yield* router.get("/api/v1/metadata", metadataGet)
    yield* router.post("/api/v1/metadata", metadataPost)
    for (const path of ["/api/v1/image", "/api/v1/favicon", "/api/v1/metadata"] as const) yield* router.options(path, preflight)
  })
)
