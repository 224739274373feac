/**
 * `troupe uploads`: the uploads service alone on `UPLOADS_PORT` (default 8081), with `/health`,
 * and `/health/detailed` and `/metrics` on the admin listener. Like `troupe gateway` it is a
 * stateless edge that needs `DATABASE_URL` (sessions and API keys are checked through the
 * cluster, chats told through it) and the shared `TROUPE_MASTER_KEY`; files go to the blob store
 * (`S3_*`, or the data dir's folder).
 */
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Cli from "../runtime/Cli.ts"
import * as TroupeConfig from "../runtime/Config.ts"
import type * as Http from "../runtime/Http.ts"
import * as Roles from "../runtime/Roles.ts"
import * as UploadsConfig from "./Config.ts"

/** The `uploads` command, given the app and the uploads routes with their access (the composition root has both). */
export const make = (app: Roles.App, routes: Layer.Layer<never, unknown, Roles.Member | Http.Routes>) =>
  Command.make("uploads", {}, () =>
    Effect.gen(function*() {
      const troupe = yield* Cli.loadConfig(TroupeConfig.fromEnv)
      const config = yield* Cli.loadConfig(UploadsConfig.fromEnv)
      if (troupe.database._tag !== "Postgres") {
        return yield* Effect.fail(new Cli.StartupError("invalid configuration: DATABASE_URL: is required for `troupe uploads` (it checks sessions and API keys through the cluster)"))
      }
      const own = { ...troupe, http: { ...troupe.http, host: config.http.host, port: config.http.port } }
      const role = Roles.layerGateway({ ...app, routes, startRoutes: Layer.empty }, own)
      yield* Effect.scoped(
        Layer.build(role).pipe(
          Effect.zipRight(Effect.logInfo(`Uploads server ready on ${config.http.host}:${config.http.port}`)),
          Effect.zipRight(Effect.never)
        )
      ).pipe(Effect.provide(Roles.layerLogging(troupe, "uploads")))
    })
  ).pipe(
    Command.withDescription(
      "Run the uploads service alone (POST /v1/uploads, GET /v1/uploads/{id}, GET /v1/files/{id}[/preview]) on UPLOADS_PORT (default 8081). Needs DATABASE_URL and TROUPE_MASTER_KEY, like `troupe gateway`."
    )
  )
