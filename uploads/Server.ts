/**
 * How the uploads service is assembled: inside `troupe start` and `troupe gateway` (the routes on
 * the main server, with the gateway's sessions and API keys), or alone as `troupe uploads` (its
 * own port, `UPLOADS_PORT`). It uses the preview service's image engine in its own worker pool,
 * the platform's blob store and database, and a key ring over the master key.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as BlobStore from "../runtime/BlobStore.ts"
import { TroupeConfig } from "../runtime/Config.ts"
import type * as Http from "../runtime/Http.ts"
import * as KeyRing from "../runtime/KeyRing.ts"
import * as Roles from "../runtime/Roles.ts"
import type { TransformResult } from "../preview/engine/Engine.ts"
import * as Pool from "../preview/engine/Pool.ts"
import type { Authenticator } from "./Access.ts"
import * as UploadsConfig from "./Config.ts"
import * as Routes from "./Routes.ts"
import * as Uploads from "./Uploads.ts"

/**
 * The image pool of a configuration (the preview's engine, in workers), started on the first
 * file that needs it: a process that takes no images holds no image workers.
 */
export const layerPool = (config: UploadsConfig.UploadsConfigShape): Layer.Layer<Pool.ImagePool> =>
  Layer.scoped(
    Pool.ImagePool,
    Effect.gen(function*() {
      let pool: ReturnType<typeof Pool.makePool> | undefined
      const get = () =>
        (pool ??= Pool.makePool({
          engine: config.engine,
          size: config.workers,
          timeoutMs: config.workerTimeoutMs,
          maxWorkerMemoryBytes: 1024 ** 3,
          maxJobsPerWorker: 1000,
          maxQueue: 256
        }))
      yield* Effect.addFinalizer(() => (pool ? Effect.promise(pool.close) : Effect.void))
      return Pool.ImagePool.of({
        transform: (input, params, limits) =>
          Effect.async<TransformResult, Pool.ImageError>((resume) => {
            let cancel: (() => void) | undefined
            get().submit(input, params, limits, (c) => {
              cancel = c
            }).then(
              (result) => resume(Effect.succeed(result)),
              (e: unknown) => resume(Effect.fail(e instanceof Pool.ImageError ? e : new Pool.ImageError({ code: "decode_failed", message: String(e) })))
            )
            return Effect.sync(() => cancel?.())
          }),
        stats: Effect.sync(() => get().stats())
      })
    })
  )

/** The key ring over the process's master key (`TROUPE_MASTER_KEY`, or the data dir's key file on the embedded default). */
export const layerKeyRing: Layer.Layer<KeyRing.KeyRing, unknown, TroupeConfig | SqlClient.SqlClient> = Layer.unwrapEffect(
  Effect.flatMap(TroupeConfig, (config) => Effect.map(Roles.resolveMasterKeys(config), KeyRing.layer))
)

/** The service with a given configuration. */
export const layerService = (config: UploadsConfig.UploadsConfigShape) =>
  Uploads.layer.pipe(Layer.provideMerge(Layer.mergeAll(UploadsConfig.layer(config), layerPool(config))))

/**
 * The service (configuration read from the environment when the layer is built) and its
 * routes. Provided once per process: the gateway's handlers use the same service (deleting a
 * chat or an account shreds its files).
 */
export const layerEmbedded: Layer.Layer<Uploads.Uploads | UploadsConfig.UploadsConfig, unknown, TroupeConfig | SqlClient.SqlClient | BlobStore.BlobStore> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* UploadsConfig.fromEnv
    const troupe = yield* TroupeConfig
    const masters = yield* Effect.either(Roles.resolveMasterKeys(troupe))
    if (masters._tag === "Left") {
      // a gateway without the master key serves everything else; uploads answer 503 with the reason
      yield* Effect.logWarning(`uploads disabled: ${masters.left}`)
      return Layer.merge(Layer.succeed(Uploads.Uploads, Uploads.disabled(`uploads are disabled on this server: ${masters.left}`)), UploadsConfig.layer(config))
    }
    return layerService(config).pipe(Layer.provide(KeyRing.layer(masters.right)))
  })
)

/** The routes, over a service and an authenticator. */
export const layerRoutes: Layer.Layer<never, never, Http.Routes | Uploads.Uploads | UploadsConfig.UploadsConfig | Authenticator> = Routes.layer
