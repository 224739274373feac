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
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import Pg from "pg"
import type { DatabaseConfig } from "./Config.ts"
import { TroupeConfig } from "./Config.ts"
import * as PgliteClient from "./PgliteClient.ts"
import type { GaugeSample } from "./Telemetry.ts"

/**
 * Whether an error is a unique-key violation (SQLSTATE 23505, which Postgres and PGlite both
 * report): the row exists already, so the write was a duplicate.
 */
export const isUniqueViolation = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null || (error as { _tag?: unknown })._tag !== "SqlError") return false
  const cause = (error as SqlError).cause as { code?: unknown; message?: unknown } | undefined
  return cause?.code === "23505" || /duplicate key|unique constraint/i.test(String(cause?.message ?? ""))
}

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

/**
 * Whether a failure to reach Postgres may pass — it is still starting, or this host is too busy to
 * finish a connection in time — as opposed to a refusal (wrong password, no such database).
 */
const isUnreachable = (error: SqlError): boolean => {
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined
  return ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EAI_AGAIN", "57P03"].includes(String(cause?.code ?? "")) ||
    /timeout exceeded|Connection terminated/i.test(String(cause?.message ?? ""))
}

/**
 * A process that starts beside its database (a compose stack, a busy CI host) waits for it:
 * backing off up to 3 s between tries, for at most 90 s, before it gives up.
 */
const startRetry = Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("3 seconds")), Schedule.upTo("90 seconds"))

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
            // a wait this long means the pool is exhausted or the host starved: fail rather than hang, but
            // not so early that a busy host (a runner starting beside others on two cores) dies at start
            connectionTimeoutMillis: 30_000,
            idleTimeoutMillis: 30_000
          })
        ),
        (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption("5 seconds"))
      )
      pool.on("error", () => {
        // idle client errors (server restart): the pool discards the client; queries report their own errors
      })
      const client = yield* PgClient.fromPool({ acquire: Effect.succeed(pool) })
      yield* client`SELECT 1`.pipe(
        Effect.tapError((e) =>
          isUnreachable(e) ? Effect.logWarning("database not reachable yet, retrying", { cause: String((e.cause as Error | undefined)?.message ?? e.message) }) : Effect.void
        ),
        Effect.retry({ while: isUnreachable, schedule: startRetry })
      )
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

/** The advisory lock key that serialises schema changes between processes (any constant works). */
const startupLockKey = 7_204_112_961

/**
 * Run `effect` while holding a Postgres session advisory lock shared by every Troupe process on
 * the database, so that runners started together do not race creating the same tables (a race
 * Postgres reports as a unique violation on `pg_type`, or the migrator as "Migrations already
 * running"). The lock lives on a connection of its own and ends with it, also when the process
 * dies; waiting for it stays interruptible. The embedded database has one process and no lock.
 * `effect` runs in a scope of its own: build layers with `Layer.buildWithScope`.
 */
export const withStartupLock = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, Exclude<R, Scope.Scope>> =>
  Effect.flatMap(Effect.serviceOption(PgClient.PgClient), (pg) =>
    Option.isNone(pg)
      ? Effect.scoped(effect)
      : Effect.scoped(Effect.gen(function*() {
        const conn = yield* pg.value.reserve
        // added first, so that no interruption can leave the lock held on a pooled connection
        yield* Effect.addFinalizer(() => Effect.ignore(conn.executeRaw(`SELECT pg_advisory_unlock(${startupLockKey})`, [])))
        yield* conn.execute(`SELECT pg_try_advisory_lock(${startupLockKey}) AS locked`, [], undefined).pipe(
          Effect.map((rows) => rows[0]?.locked === true),
          Effect.repeat({ until: (locked) => locked, schedule: Schedule.spaced("100 millis") })
        )
        return yield* effect
      })))
