import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Cluster from "./Cluster.ts"
import * as TroupeConfig from "./Config.ts"
import * as Database from "./Database.ts"
import * as Migrations from "./Migrations.ts"
import * as Probe from "./Probe.ts"
import { createTestDatabase } from "./testing/services.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  db = await createTestDatabase("retention")
})
afterAll(() => db.drop())

const clusterConfig = (env: Record<string, string> = {}) =>
  Effect.runSync(Effect.withConfigProvider(TroupeConfig.fromEnv, ConfigProvider.fromMap(new Map(Object.entries(env))))).cluster

const single = (env: Record<string, string> = {}) => {
  const config = clusterConfig(env)
  const database = Database.layerPostgres({ url: Redacted.make(db.url), maxConnections: 6 })
  return Layer.mergeAll(Probe.layer("test")).pipe(
    Layer.provideMerge(Cluster.layerSingle(config)),
    Layer.provideMerge(Layer.effectDiscard(Migrations.run(Probe.migrations))),
    Layer.provideMerge(database)
  )
}

const record = (id: string, messageId: string) =>
  Effect.flatMap(Probe.Probe.client, (client) => client(id).Record(new Probe.RecordMessage({ messageId })))

describe("cluster retention", () => {
  it.live("deletes processed messages and their replies older than the retention, and nothing else", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => record(`r-${i % 3}`, `m-${i}`), { concurrency: 5 })
      const count = (table: string) => Effect.map(sql<{ n: string }>`SELECT count(*) AS n FROM ${sql(table)}`, (r) => Number(r[0]!.n))
      const messagesBefore = yield* count("cluster_messages")
      expect(messagesBefore).toBeGreaterThanOrEqual(10)
      expect(yield* count("cluster_replies")).toBeGreaterThanOrEqual(10)

      // nothing is old enough yet
      expect(yield* Cluster.deleteProcessed(Duration.hours(1))).toEqual({ messages: 0, replies: 0 })

      // one message that is somehow still unprocessed must survive
      yield* sql`UPDATE cluster_messages SET processed = FALSE WHERE id = (SELECT min(id) FROM cluster_messages)`
      const deleted = yield* Cluster.deleteProcessed(Duration.zero.pipe(Duration.sum(Duration.millis(1))))
      expect(deleted.messages).toBe(messagesBefore - 1)
      expect(yield* count("cluster_messages")).toBe(1)
      const [left] = yield* sql<{ processed: boolean }>`SELECT processed FROM cluster_messages`
      expect(left!.processed).toBe(false)
      yield* sql`UPDATE cluster_messages SET processed = TRUE`

      // the de-duplicated command ran once and its effect is kept in our own table
      const rows = yield* sql<{ n: string }>`SELECT count(*) AS n FROM troupe_probe_log`
      expect(Number(rows[0]!.n)).toBe(10)
    }).pipe(Effect.provide(single())), { timeout: 60_000 })

  it.live("runs on its own as a cluster singleton", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* record("s-1", "singleton-1")
      const remaining = () => Effect.map(sql<{ n: string }>`SELECT count(*) AS n FROM cluster_messages WHERE processed`, (r) => Number(r[0]!.n))
      let left = yield* remaining()
      for (let i = 0; i < 300 && left > 0; i++) {
        yield* Effect.sleep("100 millis")
        left = yield* remaining()
      }
      expect(left).toBe(0)
    }).pipe(
      Effect.provide(
        Layer.provideMerge(
          // shorter than operators may configure (a reply must outlive the caller's wait for it)
          Cluster.layerRetention({ ...clusterConfig(), retention: Duration.seconds(2), retentionInterval: Duration.millis(250) }),
          single()
        )
      )
    ), { timeout: 60_000 })
})

describe("retryTransient", () => {
  const flaky = (failures: ReadonlyArray<Effect.Effect<never, unknown>>) => {
    let calls = 0
    const effect = Effect.suspend(() => (calls < failures.length ? failures[calls++]! : Effect.succeed(`ok after ${calls}`)))
    return { effect, calls: () => calls }
  }

  it.live("retries socket errors, moving shards and calls interrupted by a shard hand-over", () =>
    Effect.gen(function*() {
      const { calls, effect } = flaky([
        Effect.die({ _tag: "SocketError", message: "EPIPE" }),
        Effect.fail({ _tag: "EntityNotAssignedToRunner" }),
        Effect.interrupt
      ])
      expect(yield* Cluster.retryTransient(effect)).toBe("ok after 3")
      expect(calls()).toBe(3)
    }))

  it.live("does not retry other failures", () =>
    Effect.gen(function*() {
      const { calls, effect } = flaky([Effect.fail({ _tag: "InsufficientCredits" }), Effect.fail("never reached")])
      expect(yield* Effect.flip(Cluster.retryTransient(effect))).toEqual({ _tag: "InsufficientCredits" })
      expect(calls()).toBe(1)
    }))

  it.live("gives up after its time", () =>
    Effect.gen(function*() {
      const effect = Effect.fail({ _tag: "RunnerUnavailable" })
      expect(yield* Effect.flip(Cluster.retryTransient(effect, "300 millis"))).toEqual({ _tag: "RunnerUnavailable" })
    }))
})

describe("members starting together", () => {
  it.live("all start on a fresh database: migrations and the cluster's tables are created once", () =>
    Effect.gen(function*() {
      const fresh = yield* Effect.acquireRelease(Effect.promise(() => createTestDatabase("together")), (d) => Effect.promise(() => d.drop()))
      // each member has a pool of its own, as separate processes would
      const member = () =>
        Layer.effectDiscard(Migrations.run([...Probe.migrations])).pipe(
          Layer.provideMerge(Cluster.layerClientOnly(clusterConfig())),
          Layer.provideMerge(Database.layerPostgres({ url: Redacted.make(fresh.url), maxConnections: 4 }))
        )
      const contexts = yield* Effect.forEach(Array.from({ length: 4 }, member), (layer) => Layer.build(layer), { concurrency: "unbounded" })
      expect(contexts).toHaveLength(4)
      const sql = yield* Effect.provide(SqlClient.SqlClient, contexts[0]!)
      const applied = yield* sql<{ n: string }>`SELECT count(*) AS n FROM troupe_migrations`
      expect(Number(applied[0]!.n)).toBe(Probe.migrations.length)
      const tables = yield* sql<{ name: string }>`SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'cluster_%' ORDER BY 1`
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(["cluster_locks", "cluster_messages", "cluster_replies", "cluster_runners"]))
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
