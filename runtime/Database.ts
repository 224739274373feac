/**
 * The database: Postgres through `@effect/sql-pg` when `DATABASE_URL` is set, otherwise the
 * embedded PGlite in the data folder. Both provide the same `SqlClient`.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import Pg from "pg"
import type { DatabaseConfig } from "./Config.ts"
import { TroupeConfig } from "./Config.ts"
import * as PgliteClient from "./PgliteClient.ts"
import type { GaugeSample } from "./Telemetry.ts"

/** What kind of database backs this process, and how to read its pool figures. */
export class DatabaseInfo extends Context.Tag("troupe/runtime/Database/DatabaseInfo")<DatabaseInfo, {
  readonly kind: "postgres" | "embedded"
  readonly poolGauges: () => ReadonlyArray<GaugeSample>
}>() {}

const poolGauges = (kind: string, total: () => number, idle: () => number, waiting: () => number) => (): ReadonlyArray<GaugeSample> => [
  { name: "troupe_db_pool_connections", help: "Database connections open", labels: { kind }, value: total() },
  { name: "troupe_db_pool_idle_connections", help: "Database connections idle", labels: { kind }, value: idle() },
  { name: "troupe_db_pool_waiting_requests", help: "Requests waiting for a database connection", labels: { kind }, value: waiting() }
]

/** Postgres over a `pg` pool we own, so its figures can be reported. */
export const layerPostgres = (options: {
  readonly url: Redacted.Redacted
  readonly maxConnections: number
  readonly applicationName?: string
}): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient | DatabaseInfo, SqlError> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const pool = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new Pg.Pool({
            connectionString: Redacted.value(options.url),
            max: options.maxConnections,
            application_name: options.applicationName ?? "troupe",
            connectionTimeoutMillis: 10_000,
            idleTimeoutMillis: 30_000
          })
        ),
        (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption("5 seconds"))
      )
      pool.on("error", () => {
        // idle client errors (server restart): the pool discards the client; queries report their own errors
      })
      const client = yield* PgClient.fromPool({ acquire: Effect.succeed(pool) })
      yield* client`SELECT 1`
      return Context.make(PgClient.PgClient, client).pipe(
        Context.add(SqlClient.SqlClient, client),
        Context.add(DatabaseInfo, {
          kind: "postgres",
          poolGauges: poolGauges("postgres", () => pool.totalCount, () => pool.idleCount, () => pool.waitingCount)
        })
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))

/** The embedded database in `dataDir` (created on first use). */
export const layerEmbedded = (dataDir: string): Layer.Layer<SqlClient.SqlClient | DatabaseInfo, SqlError> =>
  Layer.merge(
    PgliteClient.layer({ dataDir }),
    Layer.succeed(DatabaseInfo, {
      kind: "embedded",
      poolGauges: poolGauges("embedded", () => 1, () => 1, () => 0)
    })
  ).pipe(
    Layer.provide(Layer.effectDiscard(Effect.sync(() => NodeFs.mkdirSync(dataDir, { recursive: true }))))
  )

/** Choose the database from the configuration. */
export const layerFrom = (config: DatabaseConfig, applicationName?: string): Layer.Layer<SqlClient.SqlClient | DatabaseInfo, SqlError> =>
  config._tag === "Postgres"
    ? layerPostgres({ url: config.url, maxConnections: config.maxConnections, applicationName })
    : layerEmbedded(config.dataDir)

/** The database chosen by `TroupeConfig`. */
export const layer: Layer.Layer<SqlClient.SqlClient | DatabaseInfo, SqlError, TroupeConfig> = Layer.unwrapEffect(
  Effect.map(TroupeConfig, (config) => layerFrom(config.database))
)

/** A cheap liveness probe. */
export const ping: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`SELECT 1`
).pipe(Effect.asVoid)
