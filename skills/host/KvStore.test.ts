/**
 * The skill key-value store behaves the same in memory, on embedded PGlite and on Postgres:
 * entries are scoped to app install and user, binary-safe, and size-capped.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Database from "../../runtime/Database.ts"
import * as Migrations from "../../runtime/Migrations.ts"
import * as PgliteClient from "../../runtime/PgliteClient.ts"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import * as KvStore from "./KvStore.ts"

const limits: KvStore.KvLimits = { maxKeyBytes: 16, maxValueBytes: 64, maxTotalBytes: 100 }
const ada = { app: "notes", installId: "i1", userId: "ada" }
const bytes = (s: string) => new TextEncoder().encode(s)

let pg: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  pg = await createTestDatabase("skillkv")
})
afterAll(async () => {
  await pg?.drop()
})

const sqlStore = (database: Layer.Layer<import("@effect/sql/SqlClient").SqlClient, unknown>) =>
  KvStore.layerSql(limits).pipe(
    Layer.provide(Layer.effectDiscard(Migrations.run(KvStore.migrations))),
    Layer.provide(database)
  )

const backends: ReadonlyArray<readonly [string, () => Layer.Layer<KvStore.KvStore, unknown>]> = [
  ["memory", () => KvStore.layerMemory(limits)],
  ["PGlite", () => sqlStore(PgliteClient.layer({ dataDir: undefined }))],
  ["Postgres", () => sqlStore(Database.layerPostgres({ url: Redacted.make(pg.url), maxConnections: 2 }))]
]

describe.each(backends)("skill KV store (%s)", (_name, make) => {
  let runtime: ManagedRuntime.ManagedRuntime<KvStore.KvStore, unknown>
  beforeAll(() => {
    runtime = ManagedRuntime.make(make())
  })
  afterAll(async () => {
    await runtime.dispose()
  })
  const run = <A, E>(f: (kv: KvStore.KvStore["Type"]) => Effect.Effect<A, E>) => runtime.runPromise(Effect.flatMap(KvStore.KvStore, f))

  it("keeps entries per app install and user, binary-safe", async () => {
    const binary = new Uint8Array([0, 255, 10, 13, 0x80, 1])
    await run((kv) => kv.set(ada, "k", binary))
    expect(await run((kv) => kv.get(ada, "k"))).toEqual(binary)
    expect(await run((kv) => kv.get({ ...ada, userId: "bob" }, "k"))).toBeUndefined()
    expect(await run((kv) => kv.get({ ...ada, installId: "i2" }, "k"))).toBeUndefined()
    expect(await run((kv) => kv.get({ ...ada, app: "other" }, "k"))).toBeUndefined()
    await run((kv) => kv.set(ada, "k", bytes("ünïcode")))
    expect(new TextDecoder().decode(await run((kv) => kv.get(ada, "k")))).toBe("ünïcode")
    await run((kv) => kv.set(ada, "k", undefined))
    expect(await run((kv) => kv.get(ada, "k"))).toBeUndefined()
  })

  it("refuses keys and values over their caps, and a full store", async () => {
    const scope = { ...ada, userId: "caps" }
    const error = (f: (kv: KvStore.KvStore["Type"]) => Effect.Effect<unknown, KvStore.KvError>) => run((kv) => Effect.flip(f(kv)))
    expect(await error((kv) => kv.set(scope, "k".repeat(17), bytes("v")))).toMatchObject({ reason: "key_too_large" })
    expect(await error((kv) => kv.set(scope, "", bytes("v")))).toMatchObject({ reason: "key_too_large" })
    expect(await error((kv) => kv.set(scope, "k", new Uint8Array(65)))).toMatchObject({ reason: "value_too_large" })
    await run((kv) => kv.set(scope, "a", new Uint8Array(60)))
    expect(await error((kv) => kv.set(scope, "b", new Uint8Array(40)))).toMatchObject({ reason: "quota_exceeded" })
    await run((kv) => kv.set(scope, "a", new Uint8Array(20)))
    await run((kv) => kv.set(scope, "b", new Uint8Array(40)))
    expect((await run((kv) => kv.get(scope, "b")))?.byteLength).toBe(40)
  })
})
