/**
 * The Credit entity's behaviour. Commands run one at a time per account, each in one SQL
 * transaction that locks the account row, so the balance can only be changed by the account's
 * own entity and no replay or race can spend a credit twice. Balances are kept in memory for
 * fast volatile reads.
 */
import * as Entity from "@effect/cluster/Entity"
import type * as Sharding from "@effect/cluster/Sharding"
import * as Singleton from "@effect/cluster/Singleton"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { retryTransient } from "../../runtime/Cluster.ts"
import { instrument } from "../../runtime/EntityMetrics.ts"
import {
  Balance,
  Credit,
  ExpireHolds,
  Hold,
  HoldNotActive,
  HoldNotFound,
  InsufficientCredits,
  KeyConflict,
  LedgerEntry,
  LedgerPage,
  Settlement
} from "./protocol.ts"
import * as Repo from "./repo.ts"

/** Settings of the credit accounts. */
export interface CreditSettings {
  /** A hold not settled or released within this time is released automatically. */
  readonly holdTtl: Duration.Duration
  /** How far below zero `available` may go for a new account. */
  readonly defaultOverdraft: number
  /** How often the sweeper looks for expired holds. */
  readonly sweepInterval: Duration.Duration
}

/** The credit settings service. */
export class CreditConfig extends Context.Tag("troupe/entities/credit/CreditConfig")<CreditConfig, CreditSettings>() {}

/** `TROUPE_CREDIT_HOLD_TTL`, `TROUPE_CREDIT_DEFAULT_OVERDRAFT`, `TROUPE_CREDIT_SWEEP_INTERVAL`. */
export const config: Config.Config<CreditSettings> = Config.all({
  holdTtl: Config.duration("TROUPE_CREDIT_HOLD_TTL").pipe(Config.withDefault(Duration.minutes(15))),
  defaultOverdraft: Config.integer("TROUPE_CREDIT_DEFAULT_OVERDRAFT").pipe(Config.withDefault(0)),
  sweepInterval: Config.duration("TROUPE_CREDIT_SWEEP_INTERVAL").pipe(Config.withDefault(Duration.seconds(30)))
})

/** Default settings (tests). */
export const defaults: CreditSettings = { holdTtl: Duration.minutes(15), defaultOverdraft: 0, sweepInterval: Duration.seconds(30) }

const toHold = (h: Repo.HoldRow) => new Hold({ key: h.key, amount: h.amount, status: h.status, charged: h.charged, expiresAt: h.expiresAt })

/** Host Credit entities. */
export const layer: Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient | CreditConfig> = Credit.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const accountId = address.entityId
    const settings = yield* CreditConfig
    const repo = yield* Repo.make(accountId)
    const { sql } = repo
    let balance = yield* Effect.orDie(repo.account)

    /** Transaction keys name the account: the system account's legs share the ledger with every account. */
    const txnKey = (kind: string, key: string) => `${kind}:${accountId}:${key}`

    const snapshot = () => new Balance({ available: balance.available, reserved: balance.reserved, overdraftLimit: balance.overdraftLimit })

    /** Run `body` in a transaction on the locked account, after releasing holds whose time is up. */
    const transact = <A, E>(body: (account: Repo.AccountRow) => Effect.Effect<readonly [A, Repo.AccountRow], E, never>) =>
      sql.withTransaction(
        Effect.gen(function*() {
          let account = yield* repo.lockAccount(settings.defaultOverdraft)
          account = yield* expireDue(account)
          const [result, next] = yield* body(account)
          yield* repo.saveAccount(next)
          return [result, next] as const
        })
      ).pipe(
        Effect.tap(([, next]) => Effect.sync(() => (balance = next))),
        Effect.map(([result]) => result)
      )

    const expireDue = (account: Repo.AccountRow) =>
      Effect.gen(function*() {
        const due = yield* repo.dueHolds(new Date())
        let next = account
        for (const h of due) {
          yield* repo.post(txnKey("expire", h.key), "expire", [
            { account: accountId, bucket: "reserved", amount: -h.amount },
            { account: accountId, bucket: "available", amount: h.amount }
          ])
          yield* repo.closeHold(h.key, "expired", 0)
          next = { ...next, reserved: next.reserved - h.amount, available: next.available + h.amount }
        }
        if (due.length > 0) yield* Effect.logInfo("Released expired holds").pipe(Effect.annotateLogs({ account: accountId, holds: due.length }))
        return next
      })

    return instrument("Credit", Credit.of({
      Reserve: ({ payload }) =>
        transact((account) =>
          Effect.gen(function*() {
            const existing = yield* repo.hold(payload.key)
            if (existing) {
              if (existing.amount !== payload.amount) {
                return yield* new KeyConflict({ key: payload.key, message: `hold ${payload.key} exists with amount ${existing.amount}` })
              }
              return [toHold(existing), account] as const
            }
            if (account.available - payload.amount < -account.overdraftLimit) {
              return yield* new InsufficientCredits({ available: account.available, requested: payload.amount })
            }
            if (payload.scope) {
              const used = yield* repo.scopeUsage(payload.scope.id)
              if (used + payload.amount > payload.scope.cap) {
                return yield* new InsufficientCredits({ available: Math.max(0, payload.scope.cap - used), requested: payload.amount, scope: payload.scope.id })
              }
            }
            const expiresAt = new Date(Date.now() + Duration.toMillis(settings.holdTtl))
            yield* repo.insertHold({ key: payload.key, amount: payload.amount, scopeId: payload.scope?.id ?? null, expiresAt })
            yield* repo.post(txnKey("reserve", payload.key), "reserve", [
              { account: accountId, bucket: "available", amount: -payload.amount },
              { account: accountId, bucket: "reserved", amount: payload.amount }
            ])
            const hold = new Hold({ key: payload.key, amount: payload.amount, status: "held", charged: 0, expiresAt })
            return [hold, { ...account, available: account.available - payload.amount, reserved: account.reserved + payload.amount }] as const
          })
        ).pipe(Effect.catchTag("SqlError", Effect.die)),

      Settle: ({ payload }) =>
        transact((account) =>
          Effect.gen(function*() {
            const h = yield* repo.hold(payload.key)
            if (!h) return yield* new HoldNotFound({ key: payload.key })
            if (h.status === "settled") {
              return [new Settlement({ key: h.key, held: h.amount, charged: h.charged, returned: h.amount - h.charged, capped: false }), account] as const
            }
            if (h.status !== "held") return yield* new HoldNotActive({ key: h.key, status: h.status })
            const charged = Math.min(payload.actual, h.amount)
            const returned = h.amount - charged
            yield* repo.post(txnKey("settle", h.key), "settle", [
              { account: accountId, bucket: "reserved", amount: -h.amount },
              { account: Repo.systemAccount, bucket: "revenue", amount: charged },
              { account: accountId, bucket: "available", amount: returned }
            ])
            yield* repo.closeHold(h.key, "settled", charged)
            const settlement = new Settlement({ key: h.key, held: h.amount, charged, returned, capped: payload.actual > h.amount })
            return [settlement, { ...account, reserved: account.reserved - h.amount, available: account.available + returned }] as const
          })
        ).pipe(Effect.catchTag("SqlError", Effect.die)),

      Release: ({ payload }) =>
        transact((account) =>
          Effect.gen(function*() {
            const h = yield* repo.hold(payload.key)
            if (!h) return [null, account] as const
            if (h.status !== "held") return [toHold(h), account] as const
            yield* repo.post(txnKey("release", h.key), "release", [
              { account: accountId, bucket: "reserved", amount: -h.amount },
              { account: accountId, bucket: "available", amount: h.amount }
            ])
            yield* repo.closeHold(h.key, "released", 0)
            return [toHold({ ...h, status: "released" }), { ...account, reserved: account.reserved - h.amount, available: account.available + h.amount }] as const
          })
        ).pipe(Effect.catchTag("SqlError", Effect.die)),

      Grant: ({ payload }) =>
        transact((account) =>
          Effect.gen(function*() {
            const txn = txnKey("grant", payload.key)
            if (yield* repo.hasTransaction(txn)) return [undefined, account] as const
            yield* repo.post(txn, "grant", [
              { account: Repo.systemAccount, bucket: "issued", amount: -payload.amount },
              { account: accountId, bucket: "available", amount: payload.amount }
            ], payload.reason)
            return [undefined, { ...account, available: account.available + payload.amount }] as const
          })
        ).pipe(Effect.map(snapshot), Effect.catchTag("SqlError", Effect.die)),

      SetOverdraft: ({ payload }) =>
        transact((account) => Effect.succeed([undefined, { ...account, overdraftLimit: payload.limit }] as const)).pipe(
          Effect.map(snapshot),
          Effect.catchTag("SqlError", Effect.die)
        ),

      ExpireHolds: () =>
        transact((account) => Effect.succeed([undefined, account] as const)).pipe(
          Effect.map(() => balance.reserved),
          Effect.catchTag("SqlError", Effect.die)
        ),

      Balance: () => Effect.sync(snapshot),

      Ledger: ({ payload }) =>
        repo.ledger({ before: payload.before, limit: payload.limit }).pipe(
          Effect.map((rows) => {
            const page = rows.slice(0, payload.limit)
            return new LedgerPage({
              entries: page.map((r) =>
                new LedgerEntry({
                  id: Number(r.id),
                  key: r.txn_key,
                  kind: r.kind as LedgerEntry["kind"],
                  bucket: r.bucket,
                  amount: Number(r.amount),
                  reason: r.reason,
                  createdAt: new Date(r.created_at)
                })
              ),
              next: rows.length > payload.limit ? Number(page[page.length - 1]!.id) : null
            })
          }),
          Effect.orDie
        ),

      GetHold: ({ payload }) => Effect.map(repo.hold(payload.key), (h) => (h ? toHold(h) : null)).pipe(Effect.orDie)
    }))
  }),
  { maxIdleTime: "5 minutes", concurrency: 1 }
)

/**
 * Release expired holds even on accounts nobody touches: one runner of the cluster (a
 * singleton) asks each account with due holds to expire them — the account's own entity does it.
 */
export const layerExpirySweeper: Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient | CreditConfig> = Layer.unwrapEffect(
  Effect.map(CreditConfig, (settings) =>
    Singleton.make(
      "troupe-credit-hold-expiry",
      Effect.gen(function*() {
        const client = yield* Credit.client
        const accounts = yield* Repo.accountsWithDueHolds(new Date(), 500)
        const minute = Math.floor(Date.now() / 60_000)
        yield* Effect.forEach(
          accounts,
          (account) => retryTransient(client(account).ExpireHolds(new ExpireHolds({ key: `sweep:${minute}` }))),
          { concurrency: 8, discard: true }
        )
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("Credit hold sweep failed", cause)),
        Effect.repeat(Schedule.spaced(settings.sweepInterval)),
        Effect.asVoid
      )
    )
  )
)
