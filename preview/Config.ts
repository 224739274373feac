/**
 * The preview service's configuration, read once from `PREVIEW_*` variables at the entry point
 * (`troupe preview`, or the preview routes of `troupe start`) and handed inward as a service.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { parseAllowlistEntry } from "../runtime/SafeFetch.ts"
import type { KindLimits } from "./DiskCache.ts"
import type { EngineName } from "./engine/Engine.ts"

/** Everything the preview service needs to know. */
export interface PreviewConfigShape {
  readonly http: { readonly host: string; readonly port: number }
  readonly engine: EngineName
  readonly pool: {
    readonly workers: number
    readonly timeoutMs: number
    readonly maxWorkerMemoryBytes: number
    readonly maxJobsPerWorker: number
    readonly maxQueue: number
    /** Workers start on the first image and stop after this long without one (0: start at once, keep). */
    readonly idleStopMs: number
  }
  readonly limits: {
    readonly maxImageBytes: number
    readonly maxPixels: number
    readonly maxFrames: number
    readonly maxHtmlBytes: number
    readonly fetchTimeoutMs: number
  }
  readonly image: { readonly defaultMaxWidth: number; readonly defaultMaxHeight: number; readonly defaultQuality: number }
  readonly cache: {
    readonly dir: string
    /** Hot entries also kept in memory, in bytes. */
    readonly memoryBytes: number
    readonly image: KindLimits
    readonly favicon: KindLimits
    readonly metadata: KindLimits
  }
  readonly security: {
    /**
     * Serve requests that carry no credential at all (`PREVIEW_ANONYMOUS`, off by default): then
     * anyone who can reach the service can make it fetch URLs. Configured API or signing keys
     * are required either way.
     */
    readonly anonymous: boolean
    readonly validateReferer: boolean
    readonly allowedReferers: ReadonlyArray<string>
    readonly apiKeys: ReadonlyArray<Redacted.Redacted>
    readonly corsOrigins: ReadonlyArray<string>
    readonly signingKey: Option.Option<Redacted.Redacted>
    /** Requests per minute per client IP (0 = no limit). */
    readonly rateLimitPerMinute: number
    /** Take the client IP from `X-Forwarded-For` (behind a trusted proxy only). */
    readonly trustProxy: boolean
  }
  /** `host:port` origins that may resolve to private addresses (operator allowlist). */
  readonly allowedPrivateHosts: ReadonlyArray<string>
}

/** The configuration service. */
export class PreviewConfig extends Context.Tag("troupe/preview/Config")<PreviewConfig, PreviewConfigShape>() {}

const splitList = (s: string) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)

const list = (name: string) => Config.string(name).pipe(Config.map(splitList), Config.withDefault([] as Array<string>))

const positiveInt = (name: string, fallback: number, max = Number.MAX_SAFE_INTEGER) =>
  Config.integer(name).pipe(
    Config.validate({ message: `must be an integer between 1 and ${max}`, validation: (n) => n >= 1 && n <= max }),
    Config.withDefault(fallback)
  )

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4 }

/** `10GB`, `500 MB`, `1048576` → bytes. */
export const parseBytes = (raw: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(raw)
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  return m && unit !== undefined ? Math.round(Number(m[1]) * unit) : undefined
}

const bytes = (name: string, fallback: number) =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      const n = parseBytes(raw)
      return n !== undefined && n > 0 ? Either.right(n) : Either.left(ConfigError.InvalidData([], "must be a size such as 500MB, 10GB or a number of bytes"))
    }),
    Config.withDefault(fallback)
  )

/** `86400` (seconds), `24 hours`, `7 days` → milliseconds. */
const ttl = (name: string, fallback: Duration.DurationInput) =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      if (/^\s*\d+\s*$/.test(raw)) return Either.right(Number(raw) * 1000)
      const d = Duration.decodeUnknown(raw.trim())
      return Option.isSome(d) && Duration.toMillis(d.value) > 0
        ? Either.right(Duration.toMillis(d.value))
        : Either.left(ConfigError.InvalidData([], "must be seconds or a duration such as \"7 days\""))
    }),
    Config.withDefault(Duration.toMillis(Duration.decode(fallback)))
  )

const engine = Config.string("PREVIEW_IMAGE_ENGINE").pipe(
  Config.mapOrFail((raw): Either.Either<EngineName, ConfigError.ConfigError> => {
    const v = raw.trim().toLowerCase()
    if (v === "vips" || v === "wasm-vips") return Either.right("vips")
    if (v === "jsquash" || v === "@jsquash") return Either.right("jsquash")
    return Either.left(ConfigError.InvalidData([], "must be vips (wasm-vips, the default) or jsquash"))
  }),
  Config.withDefault("vips" as EngineName)
)

const allowedPrivateHosts = Config.string("PREVIEW_ALLOWED_PRIVATE_HOSTS").pipe(
  Config.mapOrFail((raw) => {
    const entries = splitList(raw)
    const bad = entries.find((e) => parseAllowlistEntry(e) === undefined)
    return bad === undefined
      ? Either.right(entries)
      : Either.left(ConfigError.InvalidData([], `entry "${bad}" must be host:port (IPv6 as [addr]:port)`))
  }),
  Config.withDefault([] as Array<string>)
)

const cores = () => {
  const n = typeof NodeOs.availableParallelism === "function" ? NodeOs.availableParallelism() : NodeOs.cpus().length
  return Math.max(1, n)
}

/** The preview configuration from the environment. */
export const fromEnv: Config.Config<PreviewConfigShape> = Config.all({
  http: Config.all({
    host: Config.string("PREVIEW_HOST").pipe(Config.withDefault("0.0.0.0")),
    port: positiveInt("PREVIEW_PORT", 8080, 65535)
  }),
  engine,
  pool: Config.all({
    workers: positiveInt("PREVIEW_WORKERS", cores(), 256),
    timeoutMs: positiveInt("PREVIEW_WORKER_TIMEOUT_MS", 30_000),
    maxWorkerMemoryBytes: bytes("PREVIEW_WORKER_MAX_MEMORY", 1024 ** 3),
    maxJobsPerWorker: Config.integer("PREVIEW_WORKER_MAX_JOBS").pipe(Config.withDefault(10_000)),
    maxQueue: positiveInt("PREVIEW_MAX_QUEUE", 256),
    idleStopMs: Config.integer("PREVIEW_WORKERS_IDLE_STOP_MS").pipe(
      Config.withDefault(60_000),
      Config.validate({ message: "must be 0 (keep the workers) or a number of milliseconds", validation: (n) => n >= 0 })
    )
  }),
  limits: Config.all({
    maxImageBytes: bytes("PREVIEW_MAX_IMAGE_BYTES", 10 * 1024 * 1024),
    maxPixels: positiveInt("PREVIEW_MAX_PIXELS", 50_000_000),
    maxFrames: positiveInt("PREVIEW_MAX_FRAMES", 1000),
    maxHtmlBytes: bytes("PREVIEW_MAX_HTML_BYTES", 5 * 1024 * 1024),
    fetchTimeoutMs: positiveInt("PREVIEW_FETCH_TIMEOUT_MS", 10_000)
  }),
  image: Config.all({
    defaultMaxWidth: Config.integer("PREVIEW_DEFAULT_MAX_WIDTH").pipe(Config.withDefault(1920)),
    defaultMaxHeight: Config.integer("PREVIEW_DEFAULT_MAX_HEIGHT").pipe(Config.withDefault(1080)),
    defaultQuality: positiveInt("PREVIEW_DEFAULT_QUALITY", 85, 100)
  }),
  cache: Config.all({
    dataDir: Config.string("TROUPE_DATA_DIR").pipe(Config.withDefault("./.troupe")),
    dir: Config.option(Config.string("PREVIEW_CACHE_DIR")),
    memoryBytes: Config.string("PREVIEW_MEMORY_CACHE_SIZE").pipe(
      Config.mapOrFail((raw) => {
        const n = parseBytes(raw)
        return n !== undefined ? Either.right(n) : Either.left(ConfigError.InvalidData([], "must be a size such as 64MB (0 = none)"))
      }),
      Config.withDefault(64 * 1024 * 1024)
    ),
    image: Config.all({ maxBytes: bytes("PREVIEW_IMAGE_CACHE_SIZE", 10 * 1024 ** 3), ttlMs: ttl("PREVIEW_IMAGE_CACHE_TTL", "7 days") }),
    favicon: Config.all({ maxBytes: bytes("PREVIEW_FAVICON_CACHE_SIZE", 1024 ** 3), ttlMs: ttl("PREVIEW_FAVICON_CACHE_TTL", "7 days") }),
    metadata: Config.all({ maxBytes: bytes("PREVIEW_METADATA_CACHE_SIZE", 500 * 1024 ** 2), ttlMs: ttl("PREVIEW_METADATA_CACHE_TTL", "24 hours") })
  }).pipe(
    Config.map(({ dataDir, dir, ...kinds }) => ({
      dir: NodePath.resolve(Option.getOrElse(dir, () => NodePath.join(dataDir, "preview-cache"))),
      ...kinds
    }))
  ),
  security: Config.all({
    validateReferer: Config.boolean("PREVIEW_VALIDATE_REFERER").pipe(Config.withDefault(false)),
    allowedReferers: list("PREVIEW_ALLOWED_REFERERS"),
    apiKeys: list("PREVIEW_API_KEY").pipe(Config.map((keys) => keys.map((k) => Redacted.make(k)))),
    anonymous: Config.boolean("PREVIEW_ANONYMOUS").pipe(Config.withDefault(false)),
    // no cross-origin access unless listed: the web app is served from the same origin
    corsOrigins: list("PREVIEW_CORS_ORIGINS"),
    signingKey: Config.option(Config.redacted("PREVIEW_SIGNING_KEY")),
    rateLimitPerMinute: Config.integer("PREVIEW_RATE_LIMIT").pipe(
      Config.validate({ message: "must be 0 (no limit) or a number of requests per minute", validation: (n) => n >= 0 }),
      Config.withDefault(300)
    ),
    trustProxy: Config.boolean("PREVIEW_TRUST_PROXY").pipe(Config.withDefault(false))
  }),
  allowedPrivateHosts
}).pipe(
  Config.mapOrFail((c) =>
    c.security.validateReferer && c.security.allowedReferers.length === 0
      ? Either.left(ConfigError.InvalidData(["PREVIEW_ALLOWED_REFERERS"], "must list at least one origin when PREVIEW_VALIDATE_REFERER is true"))
      : Either.right(c)
  )
)

/** Whether a configuration lets anybody in at all without a session (standalone servers need one of these). */
export const hasAccessRule = (config: PreviewConfigShape): boolean =>
  config.security.anonymous || config.security.apiKeys.length > 0 || Option.isSome(config.security.signingKey)

/** A fixed configuration (tests, tools). */
export const layer = (config: PreviewConfigShape): Layer.Layer<PreviewConfig> => Layer.succeed(PreviewConfig, config)

/** Defaults for everything, with overrides (tests, benchmarks). */
export const make = (overrides: {
  readonly [K in keyof PreviewConfigShape]?: PreviewConfigShape[K] extends ReadonlyArray<unknown> ? PreviewConfigShape[K] : Partial<PreviewConfigShape[K]>
} & { readonly cacheDir: string }): PreviewConfigShape => ({
  http: { host: "127.0.0.1", port: 0, ...overrides.http },
  engine: overrides.engine ?? "vips",
  pool: { workers: 2, timeoutMs: 30_000, maxWorkerMemoryBytes: 1024 ** 3, maxJobsPerWorker: 10_000, maxQueue: 256, idleStopMs: 0, ...overrides.pool },
  limits: { maxImageBytes: 10 * 1024 * 1024, maxPixels: 50_000_000, maxFrames: 1000, maxHtmlBytes: 5 * 1024 * 1024, fetchTimeoutMs: 10_000, ...overrides.limits },
  image: { defaultMaxWidth: 1920, defaultMaxHeight: 1080, defaultQuality: 85, ...overrides.image },
  cache: {
    dir: overrides.cacheDir,
    memoryBytes: 64 * 1024 * 1024,
    image: { maxBytes: 10 * 1024 ** 3, ttlMs: 7 * 86_400_000 },
    favicon: { maxBytes: 1024 ** 3, ttlMs: 7 * 86_400_000 },
    metadata: { maxBytes: 500 * 1024 ** 2, ttlMs: 86_400_000 },
    ...overrides.cache
  },
  security: {
    anonymous: false,
    validateReferer: false,
    allowedReferers: [],
    apiKeys: [],
    corsOrigins: [],
    signingKey: Option.none(),
    rateLimitPerMinute: 0,
    trustProxy: false,
    ...overrides.security
  },
  allowedPrivateHosts: overrides.allowedPrivateHosts ?? []
})
