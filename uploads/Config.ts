/**
 * The uploads service's settings (`UPLOADS_*`, `CLAMD_*`, `TROUPE_UPLOADS_SCAN`), read at the edge
 * (the role's entry point) and handed inward as `UploadsConfig`.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as NodePath from "node:path"
import type { EngineName } from "../preview/engine/Engine.ts"
import { parseBytes } from "../preview/Config.ts"

/** Whether uploads are scanned with clamd: `off`, `optional` (scan when clamd answers), `required` (refuse with 503 when it does not). */
export type ScanMode = "off" | "optional" | "required"

/** Where clamd listens. */
export type ClamdAddress =
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "Socket"; readonly path: string }

/** The uploads configuration. */
export interface UploadsConfigShape {
  /** Standalone (`troupe uploads`) only. */
  readonly http: { readonly host: string; readonly port: number }
  /** Largest file accepted, in bytes. */
  readonly maxFileBytes: number
  /** Bytes of stored files a user may hold (ready and processing). */
  readonly userQuotaBytes: number
  /** Where bodies are streamed while they are checked (plaintext; removed when done). */
  readonly tmpDir: string
  /** Images larger than this (width × height, from the header) are refused before decoding. */
  readonly maxPixels: number
  /** PDFs with more pages are refused. */
  readonly maxPdfPages: number
  /** Longest side of a preview, in pixels. */
  readonly previewSize: number
  /** Text given to a mate per file, in characters. */
  readonly maxContextChars: number
  readonly scan: { readonly mode: ScanMode; readonly clamd: Option.Option<ClamdAddress>; readonly timeoutMs: number }
  /** Lifetime of a presigned (S3) or signed local URL of a public file. */
  readonly publicUrlTtlSeconds: number
  readonly engine: EngineName
  readonly workers: number
  readonly workerTimeoutMs: number
  /**
   * Seconds an upload may stay `processing` without progress (a live process touches it every third
   * of this) before it is rejected with `processing_interrupted`: the process handling it stopped.
   */
  readonly processingTimeoutSeconds: number
}

/** The configuration service. */
export class UploadsConfig extends Context.Tag("troupe/uploads/Config")<UploadsConfig, UploadsConfigShape>() {}

/** The configuration as a layer. */
export const layer = (config: UploadsConfigShape): Layer.Layer<UploadsConfig> => Layer.succeed(UploadsConfig, config)

const bytes = (name: string, fallback: number) =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      const n = parseBytes(raw)
      return n !== undefined && n > 0 ? Either.right(n) : Either.left(ConfigError.InvalidData([], "must be a size such as 100MB, 1GB or a number of bytes"))
    }),
    Config.withDefault(fallback)
  )

const positiveInt = (name: string, fallback: number, max = Number.MAX_SAFE_INTEGER) =>
  Config.integer(name).pipe(
    Config.validate({ message: `must be an integer between 1 and ${max}`, validation: (n) => n >= 1 && n <= max }),
    Config.withDefault(fallback)
  )

const scanMode = Config.string("TROUPE_UPLOADS_SCAN").pipe(
  Config.mapOrFail((raw): Either.Either<ScanMode, ConfigError.ConfigError> => {
    const v = raw.trim().toLowerCase()
    return v === "off" || v === "optional" || v === "required"
      ? Either.right(v)
      : Either.left(ConfigError.InvalidData([], "must be off, optional or required"))
  }),
  Config.option
)

const clamd = Config.all({
  host: Config.option(Config.string("CLAMD_HOST")),
  port: Config.option(Config.port("CLAMD_PORT")),
  socket: Config.option(Config.string("CLAMD_SOCKET"))
}).pipe(
  Config.map((c): Option.Option<ClamdAddress> =>
    Option.isSome(c.socket)
      ? Option.some({ _tag: "Socket", path: c.socket.value })
      : Option.isSome(c.host) || Option.isSome(c.port)
      ? Option.some({ _tag: "Tcp", host: Option.getOrElse(c.host, () => "127.0.0.1"), port: Option.getOrElse(c.port, () => 3310) })
      : Option.none()
  )
)

const engine = Config.string("PREVIEW_IMAGE_ENGINE").pipe(
  Config.map((raw): EngineName => (raw.trim().toLowerCase() === "jsquash" ? "jsquash" : "vips")),
  Config.withDefault("vips" as EngineName)
)

/** The uploads configuration from the environment. */
export const fromEnv: Config.Config<UploadsConfigShape> = Config.all({
  http: Config.all({
    host: Config.string("UPLOADS_HOST").pipe(Config.withDefault("0.0.0.0")),
    port: Config.port("UPLOADS_PORT").pipe(Config.withDefault(8081))
  }),
  maxFileBytes: bytes("UPLOADS_MAX_FILE_SIZE", 100 * 1024 ** 2),
  userQuotaBytes: bytes("UPLOADS_USER_QUOTA", 1024 ** 3),
  dataDir: Config.string("TROUPE_DATA_DIR").pipe(Config.withDefault("./.troupe")),
  tmpDir: Config.option(Config.string("UPLOADS_TMP_DIR")),
  maxPixels: positiveInt("UPLOADS_MAX_PIXELS", 50_000_000),
  maxPdfPages: positiveInt("UPLOADS_MAX_PDF_PAGES", 500),
  previewSize: positiveInt("UPLOADS_PREVIEW_SIZE", 1024, 4096),
  maxContextChars: positiveInt("UPLOADS_MAX_CONTEXT_CHARS", 20_000),
  scanMode,
  clamd,
  scanTimeoutMs: positiveInt("CLAMD_TIMEOUT_MS", 30_000),
  publicUrlTtlSeconds: positiveInt("UPLOADS_PUBLIC_URL_TTL", 300, 7 * 24 * 3600),
  engine,
  workers: positiveInt("UPLOADS_WORKERS", 1, 64),
  workerTimeoutMs: positiveInt("UPLOADS_WORKER_TIMEOUT_MS", 30_000),
  processingTimeoutSeconds: positiveInt("UPLOADS_PROCESSING_TIMEOUT", 600, 7 * 24 * 3600)
}).pipe(
  Config.map((c): UploadsConfigShape => ({
    http: c.http,
    maxFileBytes: c.maxFileBytes,
    userQuotaBytes: c.userQuotaBytes,
    tmpDir: Option.getOrElse(c.tmpDir, () => NodePath.join(NodePath.resolve(c.dataDir), "uploads-tmp")),
    maxPixels: c.maxPixels,
    maxPdfPages: c.maxPdfPages,
    previewSize: c.previewSize,
    maxContextChars: c.maxContextChars,
    // with clamd configured and no mode set, a scan that cannot run fails the upload
    scan: { mode: Option.getOrElse(c.scanMode, () => (Option.isSome(c.clamd) ? "required" : "off")), clamd: c.clamd, timeoutMs: c.scanTimeoutMs },
    publicUrlTtlSeconds: c.publicUrlTtlSeconds,
    engine: c.engine,
    workers: c.workers,
    workerTimeoutMs: c.workerTimeoutMs,
    processingTimeoutSeconds: c.processingTimeoutSeconds
  }))
)

/** A configuration for tests and tools (defaults, then overrides). */
export const make = (overrides: Partial<UploadsConfigShape> & { readonly tmpDir: string }): UploadsConfigShape => ({
  http: { host: "127.0.0.1", port: 0 },
  maxFileBytes: 100 * 1024 ** 2,
  userQuotaBytes: 1024 ** 3,
  maxPixels: 50_000_000,
  maxPdfPages: 500,
  previewSize: 1024,
  maxContextChars: 20_000,
  scan: { mode: "off", clamd: Option.none(), timeoutMs: 30_000 },
  publicUrlTtlSeconds: 300,
  engine: "vips",
  workers: 1,
  workerTimeoutMs: 30_000,
  processingTimeoutSeconds: 600,
  ...overrides
})
