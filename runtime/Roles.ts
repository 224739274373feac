/**
 * Process roles. Each role is a layer composed from the same parts; only configuration chooses
 * embedded or external ones. The folders above the runtime (entities, skills, gateway, preview)
 * plug in through `App`, so the runtime never imports them.
 */
import type * as MessageStorage from "@effect/cluster/MessageStorage"
import type * as Runners from "@effect/cluster/Runners"
import type * as Sharding from "@effect/cluster/Sharding"
import { Sharding as ShardingTag } from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlClient as SqlClientTag } from "@effect/sql/SqlClient"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as Backup from "./Backup.ts"
import * as BlobStore from "./BlobStore.ts"
import * as Cache from "./Cache.ts"
import * as Cluster from "./Cluster.ts"
import * as ClusterAdmin from "./ClusterAdmin.ts"
import type { RunnerAddressConfig, TroupeConfigShape } from "./Config.ts"
import { defaultPublicUrl, TroupeConfig } from "./Config.ts"
import * as Database from "./Database.ts"
import * as Health from "./Health.ts"
import * as Http from "./Http.ts"
import * as KeyRing from "./KeyRing.ts"
import * as Metrics from "./Metrics.ts"
import * as Migrations from "./Migrations.ts"
import * as Probe from "./Probe.ts"
import * as ReadyNotes from "./ReadyNotes.ts"
import * as Telemetry from "./Telemetry.ts"

/** The services every role provides to what plugs into it. */
export type Platform =
  | TroupeConfig
  | SqlClient.SqlClient
  | Database.DatabaseInfo
  | Cache.Cache
  | Cache.RedisConnection
  | BlobStore.BlobStore
  | Health.Health
  | Telemetry.MetricSources
  | ReadyNotes.ReadyNotes

/** Platform plus cluster membership. */
export type Member = Platform | Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage

/** What a runner gives the entities it hosts: membership plus the key ring. */
export type Host = Member | KeyRing.KeyRing

/** What the folders above the runtime contribute to the roles. */
export interface App {
  readonly version: string
  readonly migrations: ReadonlyArray<Migrations.Migration>
  /** Entities and singletons hosted by runners (`start`, `runner`); they read their own settings with `Config`. */
  readonly entities: Layer.Layer<never, unknown, Host>
  /** The public API routes (`start`, `gateway`). */
  readonly routes: Layer.Layer<never, unknown, Member | Http.Routes>
  /** Routes only the all-in-one `start` adds (e.g. preview and uploads on the main port). */
  readonly startRoutes: Layer.Layer<never, unknown, Member | Http.Routes>
  /**
   * The folders' own settings for `role`, checked once before anything starts (no migration, no
   * listener), so a bad variable fails with one line naming it. Reading only: no side effects.
   */
  readonly checkConfig?: (role: "start" | "runner" | "gateway", config: TroupeConfigShape) => Effect.Effect<unknown, ConfigError.ConfigError>
}

/** Every migration, the runtime's own first. */
export const allMigrations = (app: App): ReadonlyArray<Migrations.Migration> => [...Probe.migrations, ...KeyRing.migrations, ...ClusterAdmin.migrations, ...app.migrations]

/** Logging for a role. */
export const layerLogging = (config: TroupeConfigShape, service: string) =>
  Telemetry.layerLogging({ service, level: config.log.level, format: config.log.format })

/** Database, cache and blob store chosen by configuration, with their health checks and gauges. */
export const layerPlatform = (config: TroupeConfigShape, service: string): Layer.Layer<Platform, unknown> => {
  const parts = Layer.mergeAll(
    Database.layerFrom(appDatabase(config, service), `troupe-${service}`),
    config.cache._tag === "Redis" ? Cache.layerRedis(config.cache) : Cache.layerMemory({ maxEntries: config.cache.maxEntries }),
    BlobStore.layerFrom(config.blobStore),
    Health.layer(),
    Telemetry.layerMetricSources,
    ReadyNotes.layer,
    Layer.succeed(TroupeConfig, config)
  )
  const checks = Layer.effectDiscard(
    Effect.gen(function*() {
      const info = yield* Database.DatabaseInfo
      const cache = yield* Cache.Cache
      const blobs = yield* BlobStore.BlobStore
      const sql = yield* SqlClientTag
      yield* Health.register({
        name: "database",
        check: Effect.provideService(Database.ping, SqlClientTag, sql),
        details: Effect.succeed({ kind: info.kind })
      })
      yield* Health.register({
        name: "cache",
        check: cache.ping,
        details: Effect.map(cache.size, (entries) => ({ kind: cache.kind, entries }))
      })
      yield* Health.register({ name: "blob_store", check: blobs.ping, details: Effect.succeed({ kind: blobs.kind }) })
      const sources = yield* Telemetry.MetricSources
      yield* sources.register(info.poolGauges)
      yield* Metrics.touchAll
    })
  )
  return Layer.provideMerge(checks, parts)
}

/**
 * The entities' and routes' share of `DATABASE_MAX_CONNECTIONS`: a cluster member keeps a few for
 * the cluster's storage (below), so a process opens no more connections than configured.
 */
const appDatabase = (config: TroupeConfigShape, service: string): TroupeConfigShape["database"] =>
  config.database._tag === "Postgres" && (service === "runner" || service === "gateway")
    ? { ...config.database, maxConnections: Math.max(2, config.database.maxConnections - clusterConnections) }
    : config.database

/**
 * The cluster's own connections on Postgres: the shard-lock refresh must never wait behind the
 * entities' queries for a pooled connection. (A refresh slower than the lock interval makes the
 * runner give up every shard it holds: at load, with one shared pool, that stalled the cluster.)
 */
const layerClusterStorageSql = (config: TroupeConfigShape, service: string) =>
  config.database._tag === "Postgres"
    ? Layer.orDie(Database.layerPostgres({ url: config.database.url, maxConnections: clusterConnections, applicationName: `troupe-${service}-cluster` }))
    : Layer.empty

/** Connections of the cluster's own pool (lock refresh, runner list, message storage polls). */
const clusterConnections = 4

/** Run migrations once while the role starts. */
export const layerMigrations = (app: App): Layer.Layer<never, unknown, SqlClient.SqlClient> =>
  Layer.effectDiscard(Migrations.run(allMigrations(app)))

/** The `cluster` health check: a volatile round trip to a probe entity. */
const layerClusterCheck = Layer.effectDiscard(
  Effect.gen(function*() {
    const context = yield* Effect.context<Sharding.Sharding>()
    yield* Health.register({
      name: "cluster",
      check: Probe.ping("health").pipe(Effect.provide(context))
    })
  })
)

/** The entities a runner hosts: the app's, the probe, the retention job and scheduled backups, with the key ring. */
const layerHosted = (app: App, config: TroupeConfigShape, runnerName: string, masterKeys: KeyRing.MasterKeys) =>
  Layer.mergeAll(app.entities, Probe.layer(runnerName), Cluster.layerRetention(config.cluster), Backup.layerScheduled(config, app.version)).pipe(
    Layer.provide(KeyRing.layer(masterKeys))
  )

const ensureDataDir = (config: TroupeConfigShape) =>
  Layer.effectDiscard(Effect.sync(() => NodeFs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })))

/** Whether the public URL is https (responses then carry HSTS). */
export const isHttps = (config: TroupeConfigShape): boolean => Option.exists(config.http.publicUrl, (u) => u.startsWith("https:"))

/** The public HTTP server with `/health` and the given route layers, plus the admin listener. */
const layerHttp = (
  config: TroupeConfigShape,
  service: string,
  version: string,
  routes: Layer.Layer<never, unknown, Member | Http.Routes>
) =>
  Layer.merge(
    Http.layerServer({ host: config.http.host, port: config.http.port, hsts: isHttps(config) }).pipe(
      Layer.provide(Layer.mergeAll(routes, Http.layerOperationalRoutes())),
      Layer.provide(Http.Routes.Live)
    ),
    Http.layerAdminServer({ ...config.http.admin, service, version })
  )

/** `troupe start`: everything in one process on a single SQL-backed runner. */
export const layerStart = (app: App, config: TroupeConfigShape, masterKeys: KeyRing.MasterKeys) =>
  layerHttp(config, "start", app.version, Layer.merge(app.routes, app.startRoutes)).pipe(
    Layer.provide(layerClusterCheck),
    Layer.provide(layerShardGauge(config)),
    Layer.provide(layerHosted(app, config, "single", masterKeys)),
    Layer.provideMerge(Cluster.layerSingle(config.cluster)),
    Layer.provide(layerMigrations(app)),
    Layer.provideMerge(layerPlatform(config, "start")),
    Layer.provide(ensureDataDir(config))
  )

/** A runner's own figures for `troupe admin shards` (shards held, entities active). */
const layerRunnerStats = (config: TroupeConfigShape, address: string, version: string) =>
  Layer.unwrapEffect(Effect.map(ShardingTag, (sharding) =>
    ClusterAdmin.layerStats({ address, version, shardsPerGroup: config.cluster.shardsPerGroup, sharding })))

/** A hosting member's shards held, on `/metrics` (`troupe_cluster_shards`). */
const layerShardGauge = (config: TroupeConfigShape) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const sources = yield* Telemetry.MetricSources
    yield* sources.register(ClusterAdmin.shardGauges(yield* ShardingTag, config.cluster.shardsPerGroup))
  }))

/** `troupe runner`: a socket runner hosting shards; serves health and metrics on its HTTP port. */
export const layerRunner = (app: App, config: TroupeConfigShape, address: RunnerAddressConfig, masterKeys: KeyRing.MasterKeys) => {
  // the runner joins the cluster (and is handed shards) once its entities are registered
  const ready = Effect.unsafeMakeLatch(false)
  return layerHttp(config, "runner", app.version, Layer.empty).pipe(
    Layer.provide(layerClusterCheck),
    Layer.provide(Layer.effectDiscard(ready.open)),
    Layer.provide(layerRunnerStats(config, `${address.host}:${address.port}`, app.version)),
    Layer.provide(layerShardGauge(config)),
    Layer.provide(layerHosted(app, config, `${address.host}:${address.port}`, masterKeys)),
    Layer.provideMerge(Cluster.layerRunner(config.cluster, address, ready).pipe(Layer.provide(layerClusterStorageSql(config, "runner")))),
    Layer.provide(layerMigrations(app)),
    Layer.provideMerge(layerPlatform(config, "runner")),
    Layer.provide(ensureDataDir(config))
  )
}

/** `troupe gateway`: the stateless HTTP edge, a client-only cluster member. */
export const layerGateway = (app: App, config: TroupeConfigShape) =>
  layerHttp(config, "gateway", app.version, app.routes).pipe(
    Layer.provide(layerClusterCheck),
    Layer.provideMerge(Cluster.layerClientOnly(config.cluster).pipe(Layer.provide(layerClusterStorageSql(config, "gateway")))),
    Layer.provide(layerMigrations(app)),
    Layer.provideMerge(layerPlatform(config, "gateway")),
    Layer.provide(ensureDataDir(config))
  )

/** The URL to print for a server bound to `host:port`. */
export const displayUrl = (config: TroupeConfigShape): string =>
  Option.getOrElse(config.http.publicUrl, () => defaultPublicUrl(config.http))

/**
 * The master keys of a hosting role: `TROUPE_MASTER_KEY` (plus `TROUPE_PREVIOUS_MASTER_KEYS`),
 * or on the embedded default a key generated once into `<data dir>/master.key`. With Postgres
 * the key must be given: every runner has to share it.
 */
export const resolveMasterKeys = (config: TroupeConfigShape): Effect.Effect<KeyRing.MasterKeys, string> =>
  Effect.try({
    try: () => {
      const previous = config.previousMasterKeys.map((k) => KeyRing.decodeMasterKey(Redacted.value(k)))
      if (Option.isSome(config.masterKey)) return KeyRing.masterKeys(KeyRing.decodeMasterKey(Redacted.value(config.masterKey.value)), previous)
      if (config.database._tag === "Postgres") throw new Error("TROUPE_MASTER_KEY: is required when DATABASE_URL is set (every runner must share it)")
      return KeyRing.masterKeys(KeyRing.loadOrCreateKeyFile(NodePath.join(config.dataDir, "master.key")), previous)
    },
    catch: (e) => (e as Error).message
  })
