/**
 * How the preview service is assembled: standalone (`troupe preview`, its own port and admin
 * listener) or embedded in `troupe start` (the same routes on the main server, where the
 * gateway's sessions may use them).
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Health from "../runtime/Health.ts"
import * as Http from "../runtime/Http.ts"
import * as Telemetry from "../runtime/Telemetry.ts"
import * as PreviewConfig from "./Config.ts"
import * as DiskCache from "./DiskCache.ts"
import * as Pool from "./engine/Pool.ts"
import * as Preview from "./Preview.ts"
import * as Routes from "./Routes.ts"

/** The pool of a configuration. */
export const layerPool = (config: PreviewConfig.PreviewConfigShape) =>
  Pool.layer({
    engine: config.engine,
    size: config.pool.workers,
    timeoutMs: config.pool.timeoutMs,
    maxWorkerMemoryBytes: config.pool.maxWorkerMemoryBytes,
    maxJobsPerWorker: config.pool.maxJobsPerWorker,
    maxQueue: config.pool.maxQueue,
    idleStopMs: config.pool.idleStopMs
  })

/** The disk cache of a configuration. */
export const layerCache = (config: PreviewConfig.PreviewConfigShape) =>
  DiskCache.layer({ dir: config.cache.dir, memoryBytes: config.cache.memoryBytes, kinds: { image: config.cache.image, favicon: config.cache.favicon, metadata: config.cache.metadata } })

/** The service and its configuration, with a given fetcher (tests pass one with their own resolver). */
export const layerService = (config: PreviewConfig.PreviewConfigShape, fetcher: Layer.Layer<Preview.Fetcher> = Preview.layerFetcher) =>
  Layer.provideMerge(
    Preview.layer,
    Layer.mergeAll(PreviewConfig.layer(config), layerPool(config), layerCache(config), fetcher)
  )

/** The preview routes for `troupe start` (configuration read from the environment when the layer is built). */
export const layerEmbedded: Layer.Layer<never, unknown, Http.Routes> = Layer.unwrapEffect(
  Effect.map(PreviewConfig.fromEnv, (config) => Routes.layer.pipe(Layer.provide(layerService(config))))
)

/** A standalone server with nobody allowed in: no key, no signing key, no anonymous opt-in. */
export class NoAccessRule extends Data.TaggedError("NoAccessRule")<{ readonly message: string }> {}

/**
 * A whole preview server on `config.http` with `/health`, plus the admin listener with
 * `/health/detailed` and `/metrics`. It refuses to start when nobody could use it: a standalone
 * server needs `PREVIEW_API_KEY`, `PREVIEW_SIGNING_KEY` or `PREVIEW_ANONYMOUS=true`.
 */
export const layerStandalone = (
  config: PreviewConfig.PreviewConfigShape,
  options: { readonly version: string; readonly fetcher?: Layer.Layer<Preview.Fetcher>; readonly admin: Http.AdminOptions }
) =>
  Layer.unwrapEffect(
    PreviewConfig.hasAccessRule(config)
      ? Effect.succeed(
        Layer.merge(
          Http.layerServer({ host: config.http.host, port: config.http.port }).pipe(
            Layer.provide(Layer.mergeAll(Routes.layer, Http.layerOperationalRoutes())),
            Layer.provide(Http.Routes.Live)
          ),
          Http.layerAdminServer({ ...options.admin, service: "preview", version: options.version })
        ).pipe(
          Layer.provide(layerService(config, options.fetcher)),
          Layer.provide(Layer.mergeAll(Health.layer(), Telemetry.layerMetricSources))
        )
      )
      : Effect.fail(new NoAccessRule({ message: "PREVIEW_API_KEY, PREVIEW_SIGNING_KEY or PREVIEW_ANONYMOUS=true: a standalone preview server needs one (anonymous use lets anyone make it fetch URLs)" }))
  )
