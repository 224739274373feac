/**
 * The preview service: images resized through the worker pool, favicons and link-preview metadata,
 * all fetched with the SSRF-safe fetcher and kept in the disk cache. Concurrent requests for the same
 * thing share one fetch (single flight).
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { imageSize } from "image-size"
import * as NodeCrypto from "node:crypto"
import * as SafeFetch from "../runtime/SafeFetch.ts"
import { PreviewConfig } from "./Config.ts"
import { DiskCache, type Hit, type Kind } from "./DiskCache.ts"
import type { OutputFormat, TransformResult } from "./engine/Engine.ts"
import { type ImageError, ImagePool, type PoolStats } from "./engine/Pool.ts"
import * as Html from "./Html.ts"

/** A request that cannot be served; `status` and `code` become the JSON error. */
export class PreviewError extends Schema.TaggedError<PreviewError>()("PreviewError", {
  status: Schema.Number,
  code: Schema.String,
  message: Schema.String,
  details: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}) {}

/** The fetcher the service uses (the system resolver in production; tests substitute one). */
export class Fetcher extends Context.Tag("troupe/preview/Fetcher")<Fetcher, SafeFetch.SafeFetcher>() {}

/** The production fetcher. */
export const layerFetcher: Layer.Layer<Fetcher> = Layer.sync(Fetcher, () => SafeFetch.makeFetcher())

/** `GET /api/v1/image` parameters, validated. */
export interface ImageRequest {
  readonly url: string
  readonly maxWidth: number
  readonly maxHeight: number
  readonly quality: number
  readonly format: OutputFormat
  readonly refresh: boolean
}

/** `GET /api/v1/favicon` parameters. */
export interface FaviconRequest {
  readonly url: string
  readonly size: number
  readonly refresh: boolean
}

/** A binary answer and how to cache it downstream. */
export interface Served {
  readonly body: Uint8Array
  readonly contentType: string
  readonly etag: string
  readonly cache: "hit" | "miss" | "refresh"
  readonly maxAgeSeconds: number
  readonly extra: Record<string, string | number | boolean>
}

/** Metadata and how to cache it downstream. */
export interface MetadataServed {
  readonly metadata: Html.Metadata
  readonly etag: string
  readonly cache: "hit" | "miss" | "refresh"
  readonly maxAgeSeconds: number
}

/** Figures for `/health/detailed`. */
export interface PreviewStats {
  readonly engine: string
  readonly cache: Record<Kind, unknown>
  readonly pool: PoolStats
  readonly in_flight: number
  readonly allowed_private_hosts: ReadonlyArray<string>
}

/** The service. */
export class Preview extends Context.Tag("troupe/preview/Preview")<Preview, {
  readonly image: (request: ImageRequest) => Effect.Effect<Served, PreviewError>
  readonly favicon: (request: FaviconRequest) => Effect.Effect<Served, PreviewError>
  readonly metadata: (url: string, refresh: boolean) => Effect.Effect<MetadataServed, PreviewError>
  readonly stats: Effect.Effect<PreviewStats>
}>() {}

const CONTENT_TYPES: Record<OutputFormat, string> = { jpeg: "image/jpeg", webp: "image/webp", png: "image/png" }

/** A strong ETag from the body. */
export const etagOf = (body: Uint8Array): string => `"${NodeCrypto.createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`

const fetchFailure = (e: SafeFetch.SafeFetchError): PreviewError => {
  switch (e.reason) {
    case "bad_url":
      return new PreviewError({ status: 400, code: "invalid_url", message: `invalid URL: ${e.message}` })
    case "blocked_scheme":
      return new PreviewError({ status: 400, code: "blocked_scheme", message: e.message })
    case "blocked_address":
      return new PreviewError({ status: 403, code: "blocked_address", message: `refusing to fetch a non-public address: ${e.message}` })
    case "host_not_allowed":
      return new PreviewError({ status: 403, code: "host_not_allowed", message: e.message })
    case "too_many_redirects":
      return new PreviewError({ status: 422, code: "too_many_redirects", message: e.message })
    case "too_large":
      return new PreviewError({ status: 413, code: "source_too_large", message: e.message })
    case "timeout":
      return new PreviewError({ status: 504, code: "upstream_timeout", message: "the origin did not answer in time" })
    case "network":
      return new PreviewError({ status: 502, code: "upstream_unreachable", message: `could not reach the origin: ${e.message}` })
  }
}

const upstreamStatus = (status: number, url: string): PreviewError =>
  status === 404 || status === 410
    ? new PreviewError({ status: 404, code: "upstream_not_found", message: `the origin answered ${status}`, details: { upstream_status: status, url } })
    : new PreviewError({ status: 502, code: "upstream_error", message: `the origin answered ${status}`, details: { upstream_status: status, url } })

const imageFailure = (e: ImageError): PreviewError => {
  switch (e.code) {
    case "unsupported_format":
    case "unsupported_color_space":
      return new PreviewError({ status: 415, code: e.code, message: e.message })
    case "overloaded":
    case "unavailable":
      return new PreviewError({ status: 503, code: e.code, message: e.message })
    case "decode_failed":
      // the origin sent a broken image (truncated, corrupt): never served half-decoded
      return new PreviewError({ status: 502, code: e.code, message: `the origin sent a broken image: ${e.message}` })
    default:
      return new PreviewError({ status: 422, code: e.code, message: e.message })
  }
}

const concat = (chunks: ReadonlyArray<Uint8Array>, total: number): Uint8Array => {
  const out = new Uint8Array(total)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.byteLength
  }
  return out
}

/** Text that starts like SVG/XML markup (never served, never rasterised). */
const looksLikeSvg = (head: Uint8Array): boolean => {
  const text = new TextDecoder("latin1").decode(head.subarray(0, 1024)).replace(/^\uFEFF/, "").trimStart().toLowerCase()
  return text.startsWith("<svg") || (text.startsWith("<?xml") && text.includes("<svg")) || (text.startsWith("<!doctype svg"))
}

/** One ICO directory entry, the largest, as PNG bytes when it is a PNG. */
export const icoLargestPng = (b: Uint8Array): { readonly png: Uint8Array | undefined; readonly size: number } | undefined => {
  if (b.byteLength < 6 || b[0] !== 0 || b[1] !== 0 || b[2] !== 1 || b[3] !== 0) return undefined
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const count = view.getUint16(4, true)
  if (count === 0 || 6 + count * 16 > b.byteLength) return undefined
  let best: { offset: number; length: number; size: number } | undefined
  for (let i = 0; i < count; i++) {
    const at = 6 + i * 16
    const size = (b[at] || 256) * (b[at + 1] || 256)
    const length = view.getUint32(at + 8, true)
    const offset = view.getUint32(at + 12, true)
    if (offset + length > b.byteLength || length === 0) return undefined
    if (!best || size > best.size) best = { offset, length, size }
  }
  if (!best) return undefined
  const data = b.subarray(best.offset, best.offset + best.length)
  const isPng = data[0] === 0x89 && data[1] === 0x50 && data[2] === 0x4e && data[3] === 0x47
  return { png: isPng ? data : undefined, size: Math.round(Math.sqrt(best.size)) }
}

/** The service, built from its configuration, pool, cache and fetcher. */
export const layer: Layer.Layer<Preview, never, PreviewConfig | ImagePool | DiskCache | Fetcher> = Layer.effect(
  Preview,
  Effect.gen(function*() {
    const config = yield* PreviewConfig
    const pool = yield* ImagePool
    const cache = yield* DiskCache
    const fetcher = yield* Fetcher
    const inflight = new Map<string, Deferred.Deferred<Served, PreviewError>>()

    if (config.allowedPrivateHosts.length > 0) {
      yield* Effect.logWarning("preview may fetch these private origins (PREVIEW_ALLOWED_PRIVATE_HOSTS)").pipe(
        Effect.annotateLogs({ allowed_private_hosts: config.allowedPrivateHosts.join(",") })
      )
    }

    const ttlSeconds = (kind: Kind) => Math.round(config.cache[kind].ttlMs / 1000)
    const fromHit = (hit: Hit): Served => ({
      body: hit.body,
      contentType: hit.meta.contentType,
      etag: hit.meta.etag,
      cache: "hit",
      maxAgeSeconds: Math.max(0, Math.round((hit.expiresAt - Date.now()) / 1000)),
      extra: hit.meta.extra ?? {}
    })

    /** Serve from the cache, or compute once for all concurrent callers and store. */
    const cached = (
      kind: Kind,
      key: string,
      refresh: boolean,
      compute: Effect.Effect<{ body: Uint8Array; contentType: string; extra: Record<string, string | number | boolean> }, PreviewError>
    ): Effect.Effect<Served, PreviewError> =>
      Effect.gen(function*() {
        if (!refresh) {
          const hit = yield* cache.get(kind, key)
          if (hit) return fromHit(hit)
        }
        const flightKey = `${kind}\u0000${key}`
        const existing = inflight.get(flightKey)
        if (existing) return yield* Deferred.await(existing)
        const deferred = yield* Deferred.make<Served, PreviewError>()
        inflight.set(flightKey, deferred)
        const work = Effect.gen(function*() {
          const out = yield* compute
          const etag = etagOf(out.body)
          yield* cache.set(kind, key, out.body, { contentType: out.contentType, etag, extra: out.extra })
          return {
            body: out.body,
            contentType: out.contentType,
            etag,
            cache: refresh ? "refresh" as const : "miss" as const,
            maxAgeSeconds: ttlSeconds(kind),
            extra: out.extra
          }
        })
        // The work outlives any one caller (others may be waiting for it).
        yield* work.pipe(
          Effect.exit,
          Effect.flatMap((exit) => Deferred.done(deferred, exit)),
          Effect.ensuring(Effect.sync(() => inflight.delete(flightKey))),
          Effect.forkDaemon
        )
        return yield* Deferred.await(deferred)
      })

    const fetchOptions = (maxBytes: number, accept: string): SafeFetch.SafeFetchOptions => ({
      maxBytes,
      timeoutMs: config.limits.fetchTimeoutMs,
      allowedPrivateHosts: config.allowedPrivateHosts,
      headers: { accept }
    })

    /** Check what the header says before anything is decoded: SVG and pixel bombs never reach a codec. */
    const inspectHeader = (head: Uint8Array, complete: boolean): Effect.Effect<void, PreviewError> => {
      if (looksLikeSvg(head)) {
        return Effect.fail(new PreviewError({ status: 415, code: "unsupported_format", message: "SVG images are not served (they can carry scripts)" }))
      }
      let size: { width?: number; height?: number } | undefined
      try {
        size = imageSize(head)
      } catch {
        size = undefined
      }
      if (size?.width && size.height && size.width * size.height > config.limits.maxPixels) {
        return Effect.fail(
          new PreviewError({
            status: 422,
            code: "image_too_large",
            message: `image is ${size.width}x${size.height}; the limit is ${Math.round(config.limits.maxPixels / 1e6)} MP`,
            details: { width: size.width, height: size.height, max_pixels: config.limits.maxPixels }
          })
        )
      }
      if (complete && size === undefined && head.byteLength === 0) {
        return Effect.fail(new PreviewError({ status: 422, code: "decode_failed", message: "the origin sent an empty body" }))
      }
      return Effect.void
    }

    /** Stream the source, refusing it as soon as the byte cap or the header's pixel count is exceeded. */
    const fetchImageBytes = (url: string, maxBytes: number) =>
      Effect.scoped(
        Effect.gen(function*() {
          const response = yield* fetcher.safeFetchStream(url, fetchOptions(maxBytes, "image/avif,image/webp,image/png,image/jpeg,image/gif;q=0.9,image/*;q=0.8")).pipe(
            Effect.mapError(fetchFailure)
          )
          if (response.status < 200 || response.status >= 300) return yield* Effect.fail(upstreamStatus(response.status, response.url))
          const chunks: Array<Uint8Array> = []
          let total = 0
          let inspected = false
          yield* Stream.runForEach(response.body.pipe(Stream.mapError(fetchFailure)), (chunk) => {
            chunks.push(chunk)
            total += chunk.byteLength
            if (inspected || total < 64 * 1024) return Effect.void
            inspected = true
            return inspectHeader(concat(chunks, total), false)
          })
          const bytes = concat(chunks, total)
          if (!inspected) yield* inspectHeader(bytes, true)
          return { bytes, contentType: response.headers.get("content-type"), finalUrl: response.url }
        })
      )

    const runPool = (bytes: Uint8Array, params: { maxWidth: number; maxHeight: number; quality: number; format: OutputFormat }) =>
      pool.transform(bytes, params, { maxPixels: config.limits.maxPixels, maxFrames: config.limits.maxFrames }).pipe(Effect.mapError(imageFailure))

    const resultExtra = (r: TransformResult) => ({ width: r.width, height: r.height, source_format: r.source.format, source_width: r.source.width, source_height: r.source.height })

    const image = (request: ImageRequest) => {
      const key = ["image", "v1", config.engine, request.url, request.maxWidth, request.maxHeight, request.quality, request.format].join("|")
      return cached(
        "image",
        key,
        request.refresh,
        Effect.gen(function*() {
          const source = yield* fetchImageBytes(request.url, config.limits.maxImageBytes)
          const result = yield* runPool(source.bytes, request)
          return { body: result.bytes, contentType: CONTENT_TYPES[result.format], extra: resultExtra(result) }
        })
      ).pipe(Effect.withSpan("preview.image"))
    }

    /** Fetch a page's HTML (or fail with a typed error). */
    const fetchPage = (url: string) =>
      Effect.gen(function*() {
        const response = yield* fetcher.safeFetch(url, fetchOptions(config.limits.maxHtmlBytes, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")).pipe(
          Effect.mapError(fetchFailure)
        )
        if (response.status < 200 || response.status >= 300) return yield* Effect.fail(upstreamStatus(response.status, response.url))
        return response
      })

    const tryIcon = (candidate: Html.IconCandidate, size: number) =>
      Effect.gen(function*() {
        const source = yield* fetchImageBytes(candidate.url, 1024 * 1024)
        const ico = icoLargestPng(source.bytes)
        if (ico && !ico.png) {
          // An ICO of bitmaps: no codec of ours reads BMP; it is a plain raster format, serve it as is.
          return { body: source.bytes, contentType: "image/x-icon", extra: { source_url: candidate.url, width: ico.size, height: ico.size, source_format: "ico" } }
        }
        const input = ico?.png ?? source.bytes
        const result = yield* runPool(input, { maxWidth: size, maxHeight: size, quality: 90, format: "png" })
        return { body: result.bytes, contentType: "image/png", extra: { source_url: candidate.url, ...resultExtra(result) } }
      })

    const favicon = (request: FaviconRequest) => {
      const key = ["favicon", "v1", config.engine, request.url, request.size].join("|")
      return cached(
        "favicon",
        key,
        request.refresh,
        Effect.gen(function*() {
          let candidates: ReadonlyArray<Html.IconCandidate>
          const page = yield* Effect.either(fetchPage(request.url))
          if (page._tag === "Right") {
            const html = Html.decodeHtml(page.right.body, page.right.headers.get("content-type"))
            candidates = Html.rankIcons(Html.parse(html), page.right.url)
          } else if (["invalid_url", "blocked_scheme", "blocked_address", "host_not_allowed"].includes(page.left.code)) {
            return yield* Effect.fail(page.left)
          } else {
            const fallback = Html.safeUrl("/favicon.ico", request.url)
            candidates = fallback ? [{ url: fallback, rel: "fallback", type: "image/x-icon", size: 0, rank: 4 }] : []
          }
          const errors: Array<string> = []
          for (const candidate of candidates.filter((c) => c.rank < 3 || c.rel === "fallback")) {
            const outcome = yield* Effect.either(tryIcon(candidate, request.size))
            if (outcome._tag === "Right") return outcome.right
            errors.push(`${candidate.url}: ${outcome.left.code}`)
          }
          return yield* Effect.fail(
            new PreviewError({ status: 404, code: "favicon_not_found", message: "the page has no usable icon", details: { tried: errors } })
          )
        })
      ).pipe(Effect.withSpan("preview.favicon"))
    }

    const metadata = (url: string, refresh: boolean) => {
      const key = ["metadata", "v1", url].join("|")
      return cached(
        "metadata",
        key,
        refresh,
        Effect.gen(function*() {
          const page = yield* fetchPage(url)
          const contentType = (page.headers.get("content-type") ?? "").toLowerCase()
          let metadata: Html.Metadata
          if (contentType.startsWith("image/")) {
            metadata = { url: page.url, title: null, description: null, image: page.url, favicon: null, site_name: null, lang: null, type: "image" }
          } else if (contentType === "" || contentType.includes("html") || contentType.startsWith("text/")) {
            const html = Html.decodeHtml(page.body, page.headers.get("content-type"))
            metadata = Html.extractMetadata(html, page.url, page.headers.get("content-language"))
          } else {
            return yield* Effect.fail(new PreviewError({ status: 415, code: "not_html", message: `the URL serves ${contentType}, not a web page` }))
          }
          return { body: new TextEncoder().encode(JSON.stringify(metadata)), contentType: "application/json", extra: {} }
        })
      ).pipe(
        Effect.flatMap((served) =>
          Effect.try({
            try: (): MetadataServed => ({
              metadata: JSON.parse(new TextDecoder().decode(served.body)) as Html.Metadata,
              etag: served.etag,
              cache: served.cache,
              maxAgeSeconds: served.maxAgeSeconds
            }),
            catch: () => new PreviewError({ status: 502, code: "cache_corrupt", message: "a cached entry could not be read; retry with refresh=true" })
          })
        ),
        Effect.withSpan("preview.metadata")
      )
    }

    const stats = Effect.gen(function*() {
      return {
        engine: config.engine,
        cache: yield* cache.stats,
        pool: yield* pool.stats,
        in_flight: inflight.size,
        allowed_private_hosts: config.allowedPrivateHosts
      }
    })

    return Preview.of({ image, favicon, metadata, stats })
  })
)
