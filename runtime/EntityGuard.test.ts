/**
 * Poison messages (issue 15, finding 1b), on a real single-runner cluster on Postgres: a handler
 * that fails deterministically answers with `HandlerFailed` at once and the entity serves its next
 * message at once; a failure that passes (no SQLSTATE: the connection) still runs the message again.
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import { SqlClient } from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Cluster from "./Cluster.ts"
import * as TroupeConfig from "./Config.ts"
import * as Database from "./Database.ts"
import * as EntityGuard from "./EntityGuard.ts"
import { instrument } from "./EntityMetrics.ts"
import * as Migrations from "./Migrations.ts"
import { createTestDatabase } from "./testing/services.ts"

class Store extends Schema.Class<Store>("test/Poisoned/Store")({ key: Schema.String, json: Schema.String }) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

class Flaky extends Schema.Class<Flaky>("test/Poisoned/Flaky")({ key: Schema.String }) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

/** An entity that stores JSON text as jsonb (persisted), answers pings, and has a handler that fails once with a lost connection. */
const Poisoned = EntityGuard.guard(Entity.make("Poisoned", [
  Rpc.make("Store", { payload: Store, success: Schema.Number }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("Flaky", { payload: Flaky, success: Schema.Number }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("Ping", { success: Schema.Number }),
  Rpc.make("Bug", { success: Schema.Number })
]))

const runs = { store: 0, flaky: 0 }

const layerPoisoned = Poisoned.toLayer(
  Effect.gen(function*() {
    const sql = yield* SqlClient
    return instrument("Poisoned", Poisoned.of({
      Store: ({ payload }) =>
        Effect.gen(function*() {
          runs.store++
          yield* sql`CREATE TABLE IF NOT EXISTS poisoned (key TEXT PRIMARY KEY, doc JSONB NOT NULL)`
          yield* sql`INSERT INTO poisoned (key, doc) VALUES (${payload.key}, ${payload.json}::jsonb) ON CONFLICT (key) DO NOTHING`
          return runs.store
        }).pipe(Effect.orDie),
      Flaky: () =>
        Effect.suspend(() => {
          runs.flaky++
          return runs.flaky === 1 ? Effect.die(new SqlError({ cause: new Error("Connection terminated unexpectedly"), message: "connection lost" })) : Effect.succeed(runs.flaky)
        }),
      Ping: () => Effect.succeed(Date.now()),
      Bug: () => Effect.sync(() => (undefined as unknown as { x: { y: number } }).x.y)
    }))
  }),
  { maxIdleTime: "1 minute" }
)

let db: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  db = await createTestDatabase("guard")
})
afterAll(() => db.drop())

const cluster = () => {
  const config = Effect.runSync(Effect.withConfigProvider(TroupeConfig.fromEnv, ConfigProvider.fromMap(new Map())))
  return layerPoisoned.pipe(
    Layer.provideMerge(Cluster.layerSingle(config.cluster)),
    Layer.provideMerge(Layer.effectDiscard(Migrations.run([]))),
    Layer.provideMerge(Database.layerPostgres({ url: Redacted.make(db.url), maxConnections: 4 }))
  )
}

describe("a guarded entity", () => {
  it.live("answers a poison message with HandlerFailed once, and serves the next message at once", () =>
    Effect.gen(function*() {
      const client = (yield* Poisoned.client)("p1")
      expect(yield* client.Store(new Store({ key: "ok", json: "{\"k\":\"v\"}" }))).toBe(1)
      // a lone surrogate: JSON text Postgres refuses (22P02), every time
      const started = Date.now()
      const poisoned = yield* Effect.flip(client.Store(new Store({ key: "bad", json: "{\"k\":\"\\udfff\"}" })).pipe(Effect.timeout("5 seconds")))
      expect(poisoned).toMatchObject({ _tag: "HandlerFailed", entity: "Poisoned", tag: "Store", reason: "unstorable" })
      const pinged = yield* client.Ping().pipe(Effect.timeout("2 seconds"))
      expect(pinged - started).toBeLessThan(2_000)
      // the message ran once: no restart loop re-ran it
      yield* Effect.sleep("1500 millis")
      expect(runs.store).toBe(2)
      // the same poison sent again is answered from storage, not run again
      const again = yield* Effect.flip(client.Store(new Store({ key: "bad", json: "{\"k\":\"\\udfff\"}" })).pipe(Effect.timeout("5 seconds")))
      expect(again._tag).toBe("HandlerFailed")
      expect(runs.store).toBe(2)
      // a bug (a TypeError) is an internal failure, answered the same way
      const bug = yield* Effect.flip(client.Bug().pipe(Effect.timeout("5 seconds")))
      expect(bug).toMatchObject({ _tag: "HandlerFailed", reason: "internal" })
      expect(yield* client.Ping().pipe(Effect.timeout("2 seconds"))).toBeGreaterThan(0)
    }).pipe(Effect.provide(cluster())), 30_000)

  it.live("still runs a message again after a failure that passes (a lost connection)", () =>
    Effect.gen(function*() {
      const client = (yield* Poisoned.client)("p2")
      expect(yield* client.Flaky(new Flaky({ key: "f1" })).pipe(Effect.timeout("20 seconds"))).toBe(2)
    }).pipe(Effect.provide(cluster())), 30_000)

  it("classifies defects", () => {
    const sqlError = (code?: string) => new SqlError({ cause: Object.assign(new Error("x"), code ? { code } : {}), message: "x" })
    expect(EntityGuard.classify(sqlError("22P02"))).toBe("unstorable")
    expect(EntityGuard.classify(sqlError("22008"))).toBe("unstorable")
    expect(EntityGuard.classify(sqlError("54001"))).toBe("unstorable")
    expect(EntityGuard.classify(sqlError("23505"))).toBe("internal")
    expect(EntityGuard.classify(sqlError("40001"))).toBe("transient")
    expect(EntityGuard.classify(sqlError("08006"))).toBe("transient")
    expect(EntityGuard.classify(sqlError())).toBe("transient")
    expect(EntityGuard.classify(new TypeError("x"))).toBe("internal")
    expect(EntityGuard.classify({ _tag: "RunnerUnavailable" })).toBe("transient")
  })
})
