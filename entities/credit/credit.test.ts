import * as Entity from "@effect/cluster/Entity"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { layerCluster } from "../testing/cluster.ts"
import * as Behaviour from "./behaviour.ts"
import { Credit, ExpireHolds, Grant, Release, Reserve, Reverse, SetOverdraft, Settle, SpendScope } from "./protocol.ts"
import * as Repo from "./repo.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  db = await createTestDatabase("credit")
})
afterAll(() => db.drop())

const settings = Layer.succeed(Behaviour.CreditConfig, Behaviour.defaults)
const cluster = () => layerCluster({ url: db.url, migrations: Repo.migrations, entities: Layer.provide(Behaviour.layer, settings) })
/** Holds that expire after one second (only for the expiry test: elsewhere a busy machine would expire them mid-test). */
const clusterShortHolds = () =>
  layerCluster({
    url: db.url,
    migrations: Repo.migrations,
    entities: Layer.provide(Behaviour.layer, Layer.succeed(Behaviour.CreditConfig, { ...Behaviour.defaults, holdTtl: Duration.seconds(1) }))
  })

const account = (id: string) => Effect.map(Credit.client, (client) => client(id))

/** Every transaction balances, and each account's legs add up to its stored balances. */
const ledgerInvariants = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [total] = yield* sql<{ sum: string | null }>`SELECT SUM(amount) AS sum FROM credit_ledger`
  const unbalanced = yield* sql`SELECT txn_key FROM credit_ledger GROUP BY txn_key HAVING SUM(amount) <> 0`
  const mismatched = yield* sql`
    SELECT a.account_id FROM credit_accounts a
    LEFT JOIN (SELECT account_id,
                 SUM(amount) FILTER (WHERE bucket = 'available') AS available,
                 SUM(amount) FILTER (WHERE bucket = 'reserved') AS reserved
               FROM credit_ledger GROUP BY account_id) l ON l.account_id = a.account_id
    WHERE a.available <> COALESCE(l.available, 0) OR a.reserved <> COALESCE(l.reserved, 0)`
  return { total: Number(total!.sum ?? 0), unbalanced: unbalanced.length, mismatched: mismatched.length }
})

describe("Credit entity", () => {
  it.live("never overspends under concurrent reserves", () =>
    Effect.gen(function*() {
      const acct = yield* account("concurrent")
      yield* acct.Grant(new Grant({ key: "g1", amount: 100, reason: "test" }))
      const results = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) => Effect.either(acct.Reserve(new Reserve({ key: `r${i}`, amount: 7 }))),
        { concurrency: "unbounded" }
      )
      const ok = results.filter(Either.isRight)
      expect(ok).toHaveLength(14) // 14 × 7 = 98 ≤ 100 < 105
      expect(results.filter(Either.isLeft).every((r) => r.left._tag === "InsufficientCredits")).toBe(true)
      expect(yield* acct.Balance()).toMatchObject({ available: 2, reserved: 98 })
      expect(yield* ledgerInvariants).toEqual({ total: 0, unbalanced: 0, mismatched: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("never overspends under a burst of volatile reserves, settles and releases, and its memory matches the books", () =>
    Effect.gen(function*() {
      const acct = yield* account("burst")
      yield* acct.Grant(new Grant({ key: "g1", amount: 100, reason: "test" }))
      // reserves, and settles and releases of those that held, all at once (a user's chats starting and ending turns)
      const results = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) =>
          Effect.either(acct.ReserveVolatile(new Reserve({ key: `b${i}`, amount: 7 }))).pipe(
            Effect.tap((r) =>
              Either.isRight(r) && i % 2 === 0
                ? acct.SettleVolatile(new Settle({ key: `b${i}`, actual: 3 }))
                : Either.isRight(r)
                ? acct.ReleaseVolatile(new Release({ key: `b${i}` }))
                : Effect.void
            )
          ),
        { concurrency: "unbounded" }
      )
      const ok = results.filter(Either.isRight).length
      expect(results.filter(Either.isLeft).every((r) => r.left._tag === "InsufficientCredits")).toBe(true)
      // every settle charged 3 and returned 4, every release returned 7: what was charged is in the books
      const charged = results.filter((r, i) => Either.isRight(r) && i % 2 === 0).length * 3
      expect(ok).toBeGreaterThanOrEqual(14)
      const balance = yield* acct.Balance()
      expect(balance).toMatchObject({ available: 100 - charged, reserved: 0 })
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ available: string; reserved: string }>`SELECT available, reserved FROM credit_accounts WHERE account_id = 'burst'`
      expect({ available: Number(row!.available), reserved: Number(row!.reserved) }).toEqual({ available: balance.available, reserved: balance.reserved })
      expect(yield* ledgerInvariants).toMatchObject({ unbalanced: 0, mismatched: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("settles the actual cost, returns the rest, and charges a settled hold only once", () =>
    Effect.gen(function*() {
      const acct = yield* account("settle")
      yield* acct.Grant(new Grant({ key: "g", amount: 50, reason: "test" }))
      yield* acct.Reserve(new Reserve({ key: "turn-1", amount: 20 }))
      const first = yield* acct.Settle(new Settle({ key: "turn-1", actual: 6 }))
      expect(first).toMatchObject({ held: 20, charged: 6, returned: 14, capped: false })
      // replays and late commands change nothing
      expect(yield* acct.Settle(new Settle({ key: "turn-1", actual: 6 }))).toMatchObject({ charged: 6 })
      expect(yield* acct.Release(new Release({ key: "turn-1" }))).toMatchObject({ status: "settled", charged: 6 })
      expect(yield* acct.Balance()).toMatchObject({ available: 44, reserved: 0 })

      // a cost above the hold is capped at the hold
      yield* acct.Reserve(new Reserve({ key: "turn-2", amount: 10 }))
      expect(yield* acct.Settle(new Settle({ key: "turn-2", actual: 25 }))).toMatchObject({ charged: 10, capped: true })
      expect(yield* acct.Balance()).toMatchObject({ available: 34, reserved: 0 })

      // release returns a hold entirely
      yield* acct.Reserve(new Reserve({ key: "turn-3", amount: 30 }))
      yield* acct.Release(new Release({ key: "turn-3" }))
      expect(yield* Effect.flip(acct.Settle(new Settle({ key: "turn-3", actual: 1 })))).toMatchObject({ _tag: "HoldNotActive", status: "released" })
      expect(yield* Effect.flip(acct.Settle(new Settle({ key: "nope", actual: 1 })))).toMatchObject({ _tag: "HoldNotFound" })
      expect(yield* acct.Balance()).toMatchObject({ available: 34, reserved: 0 })

      const page = yield* acct.Ledger({ limit: 100 })
      expect(page.entries.filter((e) => e.kind === "settle").map((e) => e.amount).sort()).toEqual([-20, -10, 14].sort())
      expect(yield* ledgerInvariants).toEqual({ total: 0, unbalanced: 0, mismatched: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("applies a grant once per key", () =>
    Effect.gen(function*() {
      const acct = yield* account("grants")
      yield* Effect.all(Array.from({ length: 5 }, () => acct.Grant(new Grant({ key: "welcome", amount: 25, reason: "signup" }))), { concurrency: 5 })
      yield* acct.Grant(new Grant({ key: "promo", amount: 5, reason: "promo" }))
      expect(yield* acct.Balance()).toMatchObject({ available: 30 })
    }).pipe(Effect.provide(cluster())))

  it.live("goes below zero only down to the overdraft limit", () =>
    Effect.gen(function*() {
      const acct = yield* account("overdraft")
      yield* acct.Grant(new Grant({ key: "g", amount: 10, reason: "test" }))
      expect(yield* Effect.flip(acct.Reserve(new Reserve({ key: "a", amount: 15 })))).toMatchObject({ _tag: "InsufficientCredits", available: 10 })
      yield* acct.SetOverdraft(new SetOverdraft({ key: "od-1", limit: 5 }))
      yield* acct.Reserve(new Reserve({ key: "b", amount: 15 }))
      expect(yield* acct.Balance()).toMatchObject({ available: -5, reserved: 15, overdraftLimit: 5 })
      expect(yield* Effect.flip(acct.Reserve(new Reserve({ key: "c", amount: 1 })))).toMatchObject({ _tag: "InsufficientCredits" })
    }).pipe(Effect.provide(cluster())))

  it.live("reverses a grant once per key, below zero if the credits were spent, and then refuses holds", () =>
    Effect.gen(function*() {
      const acct = yield* account("reversal")
      yield* acct.Grant(new Grant({ key: "purchase", amount: 10, reason: "purchase" }))
      yield* acct.Reserve(new Reserve({ key: "spend", amount: 6 }))
      yield* acct.Settle(new Settle({ key: "spend", actual: 6 }))
      yield* Effect.all(Array.from({ length: 4 }, () => acct.Reverse(new Reverse({ key: "refund", amount: 10, reason: "refund" }))), { concurrency: 4 })
      expect(yield* acct.Balance()).toMatchObject({ available: -6, reserved: 0 })
      expect(yield* Effect.flip(acct.Reserve(new Reserve({ key: "after", amount: 1 })))).toMatchObject({ _tag: "InsufficientCredits" })
      yield* acct.Grant(new Grant({ key: "top-up", amount: 10, reason: "purchase" }))
      yield* acct.Reserve(new Reserve({ key: "after-top-up", amount: 1 }))
      expect(yield* ledgerInvariants).toEqual({ total: 0, unbalanced: 0, mismatched: 0 })
    }).pipe(Effect.provide(cluster())))

  it.live("a hold refused for want of credits can be asked again with the same key after a top-up", () =>
    Effect.gen(function*() {
      const acct = yield* account("refused-then-topped-up")
      yield* acct.Grant(new Grant({ key: "g", amount: 5, reason: "test" }))
      // a skill call or a completion retried with its idempotency key after the user bought credits
      expect(yield* Effect.flip(acct.Reserve(new Reserve({ key: "call-1", amount: 8 })))).toMatchObject({ _tag: "InsufficientCredits", available: 5 })
      yield* acct.Grant(new Grant({ key: "top-up", amount: 10, reason: "purchase" }))
      expect(yield* acct.Reserve(new Reserve({ key: "call-1", amount: 8 }))).toMatchObject({ key: "call-1", amount: 8, status: "held" })
      expect(yield* acct.Balance()).toMatchObject({ available: 7, reserved: 8 })
      // and once held, the key is the same hold whatever is retried
      expect(yield* acct.Reserve(new Reserve({ key: "call-1", amount: 8 }))).toMatchObject({ status: "held" })
      expect(yield* acct.Balance()).toMatchObject({ available: 7, reserved: 8 })
      // the same under a spend cap: refused over the cap, held once the cap has room
      const scope = new SpendScope({ id: "api_key:retry", cap: 10 })
      yield* acct.Reserve(new Reserve({ key: "capped-a", amount: 6, scope }))
      expect(yield* Effect.flip(acct.Reserve(new Reserve({ key: "capped-b", amount: 6, scope })))).toMatchObject({ _tag: "InsufficientCredits", scope: "api_key:retry" })
      yield* acct.Settle(new Settle({ key: "capped-a", actual: 1 }))
      expect(yield* acct.Reserve(new Reserve({ key: "capped-b", amount: 6, scope }))).toMatchObject({ status: "held" })
      expect(yield* ledgerInvariants).toEqual({ total: 0, unbalanced: 0, mismatched: 0 })
    }).pipe(Effect.provide(cluster())))

  it.live("enforces a spend cap per scope through its holds", () =>
    Effect.gen(function*() {
      const acct = yield* account("capped")
      yield* acct.Grant(new Grant({ key: "g", amount: 1000, reason: "test" }))
      const scope = new SpendScope({ id: "api_key:k1", cap: 30 })
      yield* acct.Reserve(new Reserve({ key: "k1-a", amount: 20, scope }))
      expect(yield* Effect.flip(acct.Reserve(new Reserve({ key: "k1-b", amount: 20, scope })))).toMatchObject({ _tag: "InsufficientCredits", scope: "api_key:k1", available: 10 })
      yield* acct.Settle(new Settle({ key: "k1-a", actual: 5 }))
      yield* acct.Reserve(new Reserve({ key: "k1-c", amount: 20, scope }))
      // other spending on the account is not limited by the key's cap
      yield* acct.Reserve(new Reserve({ key: "web", amount: 500 }))
    }).pipe(Effect.provide(cluster())))

  it.live("releases holds whose time is up", () =>
    Effect.gen(function*() {
      const acct = yield* account("expiry")
      yield* acct.Grant(new Grant({ key: "g", amount: 10, reason: "test" }))
      yield* acct.Reserve(new Reserve({ key: "slow-turn", amount: 8 }))
      expect(yield* acct.Balance()).toMatchObject({ available: 2, reserved: 8 })
      yield* Effect.sleep("1200 millis")
      yield* acct.ExpireHolds(new ExpireHolds({ key: "sweep-1" }))
      expect(yield* acct.Balance()).toMatchObject({ available: 10, reserved: 0 })
      expect(yield* Effect.flip(acct.Settle(new Settle({ key: "slow-turn", actual: 3 })))).toMatchObject({ _tag: "HoldNotActive", status: "expired" })
      expect(yield* ledgerInvariants).toEqual({ total: 0, unbalanced: 0, mismatched: 0 })
    }).pipe(Effect.provide(clusterShortHolds())))

  it.live("changes nothing when the handler itself runs a command twice (redelivery after a crash)", () =>
    Effect.gen(function*() {
      // the test client calls the handler for every send: no storage de-duplication in front of it
      const makeClient = yield* Entity.makeTestClient(Credit, Layer.provide(Behaviour.layer, settings))
      const acct = yield* makeClient("redelivered")
      for (let i = 0; i < 3; i++) {
        yield* acct.Grant(new Grant({ key: "g", amount: 40, reason: "test" }))
        yield* acct.Reserve(new Reserve({ key: "h", amount: 15 }))
        yield* acct.Settle(new Settle({ key: "h", actual: 9 }))
        yield* acct.Release(new Release({ key: "h" }))
      }
      expect(yield* acct.Balance()).toMatchObject({ available: 31, reserved: 0 })
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ n: string }>`SELECT count(*) AS n FROM credit_ledger WHERE account_id = 'redelivered'`
      expect(Number(rows[0]!.n)).toBe(5) // grant 1 leg + reserve 2 legs + settle 2 legs (system leg is separate)
    }).pipe(Effect.provide(Layer.mergeAll(cluster(), ShardingConfig.layer())), Effect.scoped))
})
