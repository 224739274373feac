import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { layerCluster } from "../testing/cluster.ts"
import * as Behaviour from "./behaviour.ts"
import { withHold } from "./hold.ts"
import { Credit, Grant, Purpose, SpendScope } from "./protocol.ts"
import * as Repo from "./repo.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  db = await createTestDatabase("hold")
})
afterAll(() => db.drop())

const cluster = () =>
  layerCluster({ url: db.url, migrations: Repo.migrations, entities: Layer.provide(Behaviour.layer, Layer.succeed(Behaviour.CreditConfig, Behaviour.defaults)) })

const purpose = Purpose.skill("math.calculate", undefined)

/** An account with `credits` granted. */
const funded = (id: string, credits: number) =>
  Effect.gen(function*() {
    const account = (yield* Credit.client)(id)
    yield* account.Grant(new Grant({ key: "g", amount: credits, reason: "test" }))
    return account
  })

describe("withHold", () => {
  it.live("settles the price the work reports and returns the rest, persisted or durable-caller commands alike", () =>
    Effect.gen(function*() {
      const account = yield* funded("settles", 50)
      const first = yield* withHold(account, { purpose, key: "call-1", amount: 20 }, (hold) => Effect.succeed({ value: `held ${hold.amount}`, price: 6 }))
      expect(first).toEqual({ value: "held 20", held: 20, charged: 6 })
      const second = yield* withHold(account, { purpose, key: "turn-1", amount: 10, durable: true }, () => Effect.succeed({ value: "ok", price: 10 }))
      expect(second).toMatchObject({ held: 10, charged: 10 })
      expect(yield* account.Balance()).toMatchObject({ available: 34, reserved: 0 })
      expect(yield* account.GetHold({ key: "call-1" })).toMatchObject({ status: "settled", charged: 6 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("releases the hold when the work fails, and passes the failure on", () =>
    Effect.gen(function*() {
      const account = yield* funded("fails", 30)
      const error = yield* Effect.flip(withHold(account, { purpose, key: "call-1", amount: 12 }, () => Effect.fail("the skill broke" as const)))
      expect(error).toBe("the skill broke")
      expect(yield* account.Balance()).toMatchObject({ available: 30, reserved: 0 })
      expect(yield* account.GetHold({ key: "call-1" })).toMatchObject({ status: "released", charged: 0 })
      // a defect releases too
      yield* Effect.exit(withHold(account, { purpose, key: "call-2", amount: 12 }, () => Effect.die("boom")))
      expect(yield* account.GetHold({ key: "call-2" })).toMatchObject({ status: "released" })
      expect(yield* account.Balance()).toMatchObject({ available: 30, reserved: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("releases the hold when the work is interrupted (a client gone), keeps a durable caller's for its next run", () =>
    Effect.gen(function*() {
      const account = yield* funded("interrupted", 40)
      const interruptedWhileWorking = (key: string, durable: boolean) =>
        Effect.gen(function*() {
          const started = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(withHold(account, { purpose, key, amount: 25, durable }, () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
          yield* Deferred.await(started)
          expect(yield* account.Balance()).toMatchObject({ available: 15, reserved: 25 })
          yield* Fiber.interrupt(fiber)
        })
      yield* interruptedWhileWorking("call-1", false)
      expect(yield* account.Balance()).toMatchObject({ available: 40, reserved: 0 })
      expect(yield* account.GetHold({ key: "call-1" })).toMatchObject({ status: "released" })

      // a turn whose runner stops keeps its hold: the next attempt settles it once
      yield* interruptedWhileWorking("turn-1", true)
      expect(yield* account.GetHold({ key: "turn-1" })).toMatchObject({ status: "held", amount: 25 })
      expect(yield* withHold(account, { purpose, key: "turn-1", amount: 25, durable: true }, () => Effect.succeed({ value: "again", price: 5 }))).toMatchObject({ charged: 5 })
      expect(yield* account.Balance()).toMatchObject({ available: 35, reserved: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("refuses a price above the hold: nothing is charged and the hold is released", () =>
    Effect.gen(function*() {
      const account = yield* funded("exceeded", 40)
      const error = yield* Effect.flip(withHold(account, { purpose, key: "call-1", amount: 10 }, () => Effect.succeed({ value: "ok", price: 11 })))
      expect(error).toMatchObject({ _tag: "HoldExceeded", key: "call-1", held: 10, price: 11 })
      expect(yield* account.Balance()).toMatchObject({ available: 40, reserved: 0 })
      expect(yield* account.GetHold({ key: "call-1" })).toMatchObject({ status: "released", charged: 0 })
      // without a hold the work must cost nothing
      expect(yield* Effect.flip(withHold(account, { purpose, key: "free", amount: 0 }, () => Effect.succeed({ value: "ok", price: 1 })))).toMatchObject({ _tag: "HoldExceeded", held: 0 })
      expect(yield* withHold(account, { purpose, key: "free", amount: 0 }, () => Effect.succeed({ value: "ok", price: 0 }))).toEqual({ value: "ok", held: 0, charged: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("charges a replayed saga once, does not run on a closed hold, and runs nothing without the credits", () =>
    Effect.gen(function*() {
      const account = yield* funded("replayed", 20)
      let runs = 0
      const work = () => Effect.sync(() => ({ value: ++runs, price: 4 }))
      yield* withHold(account, { purpose, key: "turn-1", amount: 8, durable: true }, work)
      // a restarted turn runs its work again; its hold was settled: no second charge
      expect(yield* withHold(account, { purpose, key: "turn-1", amount: 8, durable: true }, work)).toEqual({ value: 2, held: 8, charged: 4 })
      expect(yield* account.Balance()).toMatchObject({ available: 16, reserved: 0 })

      yield* Effect.exit(withHold(account, { purpose, key: "turn-2", amount: 5, durable: true }, () => Effect.fail("x")))
      expect(yield* Effect.flip(withHold(account, { purpose, key: "turn-2", amount: 5, durable: true }, work))).toMatchObject({ _tag: "HoldClosed", status: "released" })

      expect(yield* Effect.flip(withHold(account, { purpose, key: "big", amount: 100 }, work))).toMatchObject({ _tag: "InsufficientCredits", available: 16, requested: 100 })
      const scope = new SpendScope({ id: "api_key:k1", cap: 3 })
      expect(yield* Effect.flip(withHold(account, { purpose, key: "capped", amount: 5, scope }, work))).toMatchObject({ _tag: "InsufficientCredits", scope: "api_key:k1" })
      expect(runs).toBe(2)
      expect(yield* account.Balance()).toMatchObject({ available: 16, reserved: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("every ledger row of a hold names what it paid for: the reason, the skill and the API key", () =>
    Effect.gen(function*() {
      const account = yield* funded("purpose", 30)
      const forecast = Purpose.skill("weather.forecast", "k_live1")
      yield* withHold(account, { key: "call-1", amount: 10, purpose: forecast }, () => Effect.succeed({ value: "sunny", price: 4 }))
      yield* Effect.exit(withHold(account, { key: "turn-1", amount: 5, durable: true, purpose: Purpose.turn("c1", undefined) }, () => Effect.fail("x")))
      const { entries } = yield* account.Ledger({ limit: 50 })
      const holdRows = entries.filter((e) => e.kind !== "grant")
      expect(holdRows.map((e) => e.kind).sort()).toEqual(["release", "release", "reserve", "reserve", "reserve", "reserve", "settle", "settle"])
      for (const e of holdRows.filter((e) => e.key.endsWith(":call-1"))) {
        expect(e).toMatchObject({ reason: "skill weather.forecast", skill: "weather.forecast", apiKeyId: "k_live1" })
      }
      for (const e of holdRows.filter((e) => e.key.endsWith(":turn-1"))) {
        expect(e).toMatchObject({ reason: "turn in chat c1", skill: null, apiKeyId: null })
      }
      expect(entries.find((e) => e.kind === "grant")).toMatchObject({ reason: "test", skill: null, apiKeyId: null })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })
})
