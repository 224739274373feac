/**
 * What an operator sees and does with the cluster: who owns what (`troupe admin shards`,
 * `GET /v1/admin/cluster`) and draining a runner before maintenance (`troupe admin drain`).
 *
 * - Every runner writes a row of its own figures every 2 s (`troupe_runner_stats`): the shards
 *   it holds per group, its active entities per type, its version. The cluster's tables give the
 *   runners' addresses, health and heartbeats. A snapshot joins the two.
 * - Draining: a drained runner is reported unhealthy by every member's view of the runners
 *   (`layerRunnerStorage` wraps the cluster's SQL runner storage), so every member — the drained
 *   runner too — computes shard assignments without it: it hands its shards over gracefully (as on
 *   SIGTERM) and stays up, holding none, until undrained. Effect cluster v3 has no drain of its own.
 */
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import type * as Sharding from "@effect/cluster/Sharding"
import * as ShardId from "@effect/cluster/ShardId"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type { Migration } from "./Migrations.ts"

/** The tables: each runner's own figures, and the runners an operator drained. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026120740,
    name: "cluster_admin",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.zipRight(
        sql`CREATE TABLE IF NOT EXISTS troupe_runner_stats (
          address TEXT PRIMARY KEY,
          version TEXT NOT NULL,
          started_at TIMESTAMPTZ NOT NULL,
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          shards JSONB NOT NULL,
          entities JSONB NOT NULL
        )`,
        sql`CREATE TABLE IF NOT EXISTS troupe_cluster_drain (
          address TEXT PRIMARY KEY,
          drained_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )`
      ))
  }
]

/** Cluster storage's table prefix (runtime/Cluster.ts). */
const runnersTable = "cluster_runners"

/** One runner as an operator sees it. */
export const RunnerView = Schema.Struct({
  address: Schema.String,
  healthy: Schema.Boolean,
  drained: Schema.Boolean,
  lastHeartbeat: Schema.NullOr(Schema.String),
  heartbeatAgeMs: Schema.NullOr(Schema.Number),
  version: Schema.NullOr(Schema.String),
  startedAt: Schema.NullOr(Schema.String),
  /** Shards held, per shard group. */
  shards: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** Active entities, per entity type. */
  entities: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** How old the runner's own figures are (it writes them every 2 s). */
  statsAgeMs: Schema.NullOr(Schema.Number)
})
export type RunnerView = typeof RunnerView.Type

/** The cluster at one moment. */
export const Snapshot = Schema.Struct({
  at: Schema.String,
  shardsPerGroup: Schema.Number,
  runners: Schema.Array(RunnerView),
  /** Shards per group that no runner reports holding (moving, or no runner up). */
  unassigned: Schema.Record({ key: Schema.String, value: Schema.Number })
})
export type Snapshot = typeof Snapshot.Type

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString())

/** Read the cluster's state from the database (any process with `DATABASE_URL` can). */
export const snapshot = (shardsPerGroup: number): Effect.Effect<Snapshot, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [now] = yield* sql<{ now: Date }>`SELECT now() AS now`
    const runners = yield* sql<{ address: string; healthy: boolean; last_heartbeat: Date }>`
      SELECT address, healthy, last_heartbeat FROM ${sql(runnersTable)}`.pipe(
      // the cluster creates its tables when its first member starts
      Effect.catchAll(() => Effect.succeed([] as Array<{ address: string; healthy: boolean; last_heartbeat: Date }>))
    )
    const stats = yield* sql<{ address: string; version: string; started_at: Date; updated_at: Date; shards: Record<string, number>; entities: Record<string, number> }>`
      SELECT address, version, started_at, updated_at, shards, entities FROM troupe_runner_stats`
    const drained = new Set((yield* sql<{ address: string }>`SELECT address FROM troupe_cluster_drain`).map((r) => r.address))
    const nowMs = new Date(now!.now).getTime()
    // a runner's figures older than 10 s are a runner that is gone (its row stays until it returns)
    const fresh = stats.filter((s) => nowMs - new Date(s.updated_at).getTime() < 10_000)
    const addresses = [...new Set([...runners.map((r) => r.address), ...fresh.map((s) => s.address)])].sort()
    const views: Array<RunnerView> = addresses.map((address) => {
      const r = runners.find((x) => x.address === address)
      const s = fresh.find((x) => x.address === address)
      return {
        address,
        healthy: r ? Boolean(r.healthy) && !drained.has(address) : false,
        drained: drained.has(address),
        lastHeartbeat: r ? iso(r.last_heartbeat) : null,
        heartbeatAgeMs: r ? Math.max(0, nowMs - new Date(r.last_heartbeat).getTime()) : null,
        version: s?.version ?? null,
        startedAt: s ? iso(s.started_at) : null,
        shards: s?.shards ?? {},
        entities: s?.entities ?? {},
        statsAgeMs: s ? Math.max(0, nowMs - new Date(s.updated_at).getTime()) : null
      }
    })
    const groups = new Set(["default", ...views.flatMap((v) => Object.keys(v.shards))])
    const unassigned: Record<string, number> = {}
    for (const g of groups) unassigned[g] = Math.max(0, shardsPerGroup - views.reduce((n, v) => n + (v.shards[g] ?? 0), 0))
    return { at: new Date(nowMs).toISOString(), shardsPerGroup, runners: views, unassigned }
  })

/** A runner given to `drain` is not one the cluster knows. */
export class UnknownRunner extends Schema.TaggedError<UnknownRunner>()("UnknownRunner", { address: Schema.String, known: Schema.Array(Schema.String) }) {}

/** Draining would leave no runner to take the shards. */
export class LastRunner extends Schema.TaggedError<LastRunner>()("LastRunner", { address: Schema.String }) {}

/** Drain `address` (its shards move to the others; it stays up holding none), or undo it. */
export const drain = (address: string, options: { readonly undo?: boolean } = {}): Effect.Effect<void, UnknownRunner | LastRunner | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (options.undo) {
      yield* sql`DELETE FROM troupe_cluster_drain WHERE address = ${address}`
      return
    }
    const runners = (yield* sql<{ address: string }>`SELECT address FROM ${sql(runnersTable)}`.pipe(Effect.orElseSucceed(() => [])))
      .map((r) => r.address)
    if (!runners.includes(address)) return yield* new UnknownRunner({ address, known: runners })
    const drained = new Set((yield* sql<{ address: string }>`SELECT address FROM troupe_cluster_drain`).map((r) => r.address))
    if (runners.filter((r) => r !== address && !drained.has(r)).length === 0) return yield* new LastRunner({ address })
    yield* sql`INSERT INTO troupe_cluster_drain (address) VALUES (${address}) ON CONFLICT (address) DO NOTHING`
  })

/**
 * The cluster's runner storage, with drained runners reported unhealthy to this member. Every
 * member (runners and gateways) reads runners through this, so they all agree on the ring.
 */
export const wrapRunnerStorage = (storage: RunnerStorage.RunnerStorage["Type"], sql: SqlClient.SqlClient): RunnerStorage.RunnerStorage["Type"] => ({
  ...storage,
  getRunners: Effect.flatMap(storage.getRunners, (runners) =>
    sql<{ address: string }>`SELECT address FROM troupe_cluster_drain`.pipe(
      Effect.map((rows) => {
        if (rows.length === 0) return runners
        const drained = new Set(rows.map((r) => r.address))
        return runners.map(([runner, healthy]) => [runner, healthy && !drained.has(`${runner.address.host}:${runner.address.port}`)] as const)
      }),
      // without the table (not migrated yet) nothing is drained
      Effect.orElseSucceed(() => runners)
    ))
})

/** `RunnerStorage` from the SQL one below it, with draining (see `wrapRunnerStorage`). */
export const layerDrainable = Layer.effect(
  RunnerStorage.RunnerStorage,
  Effect.gen(function*() {
    const storage = yield* RunnerStorage.RunnerStorage
    const sql = yield* SqlClient.SqlClient
    return wrapRunnerStorage(storage, sql)
  })
)

/** Shards this runner holds now, per group. */
const heldShards = (sharding: Sharding.Sharding["Type"], shardsPerGroup: number, groups: ReadonlyArray<string>) => {
  const held: Record<string, number> = {}
  for (const group of groups) {
    let n = 0
    for (let id = 1; id <= shardsPerGroup; id++) if (sharding.hasShardId(ShardId.make(group, id))) n++
    held[group] = n
  }
  return held
}

/** This runner's shards held, per group, as scrape-time gauges (`troupe_cluster_shards`): the dashboard's shards per runner and runner count. */
export const shardGauges = (sharding: Sharding.Sharding["Type"], shardsPerGroup: number, groups: ReadonlyArray<string> = ["default"]) => () =>
  Object.entries(heldShards(sharding, shardsPerGroup, groups)).map(([group, value]) => ({
    name: "troupe_cluster_shards",
    help: "Shards this runner holds, by shard group",
    labels: { group },
    value
  }))

/** The cluster's gauge of active entities, by `type` (`@effect/cluster/ClusterMetrics.entities`). */
const clusterEntitiesMetric = "effect_cluster_entities"

/** Active entities per type, from the cluster's own gauge. */
const activeEntities = (): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const pair of Metric.unsafeSnapshot()) {
    if (pair.metricKey.name !== clusterEntitiesMetric) continue
    const type = pair.metricKey.tags.find((t) => t.key === "type")?.value
    if (type && MetricState.isGaugeState(pair.metricState)) out[type] = Number(pair.metricState.value)
  }
  return out
}

/** A runner writes its own figures every 2 s (and removes them when it stops). */
export const layerStats = (options: {
  readonly address: string
  readonly version: string
  readonly shardsPerGroup: number
  readonly groups?: ReadonlyArray<string>
  readonly sharding: Sharding.Sharding["Type"]
}): Layer.Layer<never, never, SqlClient.SqlClient> =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const startedAt = new Date()
    const write = Effect.suspend(() => {
      const shards = JSON.stringify(heldShards(options.sharding, options.shardsPerGroup, options.groups ?? ["default"]))
      const entities = JSON.stringify(activeEntities())
      return sql`
        INSERT INTO troupe_runner_stats (address, version, started_at, updated_at, shards, entities)
        VALUES (${options.address}, ${options.version}, ${startedAt}, now(), ${shards}::jsonb, ${entities}::jsonb)
        ON CONFLICT (address) DO UPDATE SET version = EXCLUDED.version, started_at = EXCLUDED.started_at,
          updated_at = now(), shards = EXCLUDED.shards, entities = EXCLUDED.entities`
    })
    yield* write.pipe(
      Effect.catchAllCause((cause) => Effect.logDebug("Could not write runner stats", cause)),
      Effect.repeat(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    )
    yield* Effect.addFinalizer(() => Effect.ignore(sql`DELETE FROM troupe_runner_stats WHERE address = ${options.address}`))
  }))

const pad = (s: string, n: number) => (s.length >= n ? s.slice(0, n) : s + " ".repeat(n - s.length))
const age = (ms: number | null) => (ms === null ? "-" : ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`)

/** The snapshot as a terminal table. */
export const render = (s: Snapshot): string => {
  const types = [...new Set(s.runners.flatMap((r) => Object.keys(r.entities)))].sort()
  const groups = [...new Set(["default", ...s.runners.flatMap((r) => Object.keys(r.shards))])].sort()
  const header = ["RUNNER", "STATE", "HEARTBEAT", ...groups.map((g) => `SHARDS:${g}`), ...types.map((t) => t.toUpperCase()), "VERSION"]
  const widths = [23, 9, 10, ...groups.map((g) => Math.max(8, `SHARDS:${g}`.length)), ...types.map((t) => Math.max(6, t.length)), 10]
  const rows = s.runners.map((r) => [
    r.address,
    r.drained ? "drained" : r.healthy ? "healthy" : "unhealthy",
    age(r.heartbeatAgeMs),
    ...groups.map((g) => String(r.shards[g] ?? 0)),
    ...types.map((t) => String(r.entities[t] ?? 0)),
    r.version ?? "-"
  ])
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => pad(c, widths[i]!)).join("  ").trimEnd()
  const unassigned = groups.map((g) => `${g}: ${s.unassigned[g] ?? 0}`).join(", ")
  return [
    `Troupe cluster at ${s.at} — ${s.runners.length} runner(s), ${s.shardsPerGroup} shards per group, unassigned ${unassigned}`,
    "",
    line(header),
    ...rows.map(line),
    ...(rows.length === 0 ? ["(no runner)"] : [])
  ].join("\n")
}
