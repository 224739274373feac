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
import type { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { retryTransient } from "../../runtime/Cluster.ts"
import { instrument } from "../../runtime/EntityMetrics.ts"
import * as Telemetry from "../../runtime/Telemetry.ts"
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
import type { Release, Reserve, Settle } from "./protocol.ts"
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
    yield* Effect.orDie(repo.ensureAccount(settings.defaultOverdraft))
    let balance = yield* Effect.orDie(repo.account)
    /** When the earliest open hold expires; expiry is only looked for once that time has come. */
    let nextExpiry = yield* Effect.orDie(repo.nextExpiry)

    /** Transaction keys name the account: the system account's legs share the ledger with every account. */
    const txnKey = (kind: string, key: string) => `${kind}:${accountId}:${key}`

    const snapshot = () => new Balance({ available: balance.available, reserved: balance.reserved, overdraftLimit: balance.overdraftLimit })

    /**
     * Run `body` in one transaction, after releasing holds whose time is up. The body returns
     * its result and the account's new balances when it changed them; memory follows the commit.
     */
    const transact = <A, E>(body: Effect.Effect<readonly [A, Repo.AccountRow | undefined], E | SqlError, never>) =>
      Effect.gen(function*() {
        const expiring = nextExpiry !== undefined && nextExpiry <= Date.now()
        // the common case is one statement; expiry (rare) joins it in a transaction
        const [result, after] = expiring
          ? yield* sql.withTransaction(
            Effect.gen(function*() {
              const expired = yield* expireDue
              const [result, after] = yield* body
              return [result, after ?? expired] as const
            })
          )
          : yield* body
        if (after) balance = after
        if (expiring) nextExpiry = yield* repo.nextExpiry
        return result
      }).pipe(Effect.catchTag("SqlError", Effect.die), Effect.uninterruptible)

    const expireDue = Effect.gen(function*() {
      const due = yield* repo.dueHolds(new Date())
      let last: Repo.AccountRow | undefined
      for (const h of due) {
        const closed = yield* repo.close({ key: h.key, status: "expired", actual: 0, txnKey: txnKey("expire", h.key), kind: "expire" })
        if (closed) last = closed.account
      }
      if (due.length > 0) yield* Effect.logInfo("Released expired holds").pipe(Effect.annotateLogs({ account: accountId, holds: due.length }))
      return last
    })

    const reserve = (payload: Reserve) =>
      transact(
        Effect.gen(function*() {
          if (payload.scope) {
            const existing = yield* repo.hold(payload.key)
            const used = yield* repo.scopeUsage(payload.scope.id)
            if (!existing && used + payload.amount > payload.scope.cap) {
              return yield* new InsufficientCredits({ available: Math.max(0, payload.scope.cap - used), requested: payload.amount, scope: payload.scope.id })
            }
          }
          const expiresAt = new Date(Date.now() + Duration.toMillis(settings.holdTtl))
          const purpose = { reason: payload.purpose?.reason ?? null, skill: payload.purpose?.skill ?? null, apiKeyId: payload.purpose?.apiKeyId ?? null }
          const after = yield* repo.reserve({ key: payload.key, amount: payload.amount, scopeId: payload.scope?.id ?? null, expiresAt, txnKey: txnKey("reserve", payload.key), purpose })
          if (!after) {
            // nothing written: the hold exists already (a replay), or credits are short
            const existing = yield* repo.hold(payload.key)
            if (!existing) return yield* new InsufficientCredits({ available: balance.available, requested: payload.amount })
            if (existing.amount !== payload.amount) {
              return yield* new KeyConflict({ key: payload.key, message: `hold ${payload.key} exists with amount ${existing.amount}` })
            }
            return [toHold(existing), undefined] as const
          }
          if (nextExpiry === undefined || expiresAt.getTime() < nextExpiry) nextExpiry = expiresAt.getTime()
          return [new Hold({ key: payload.key, amount: payload.amount, status: "held", charged: 0, expiresAt }), after] as const
        })
      )

    const settle = (payload: Settle) =>
      transact(
        Effect.gen(function*() {
          const closed = yield* repo.close({ key: payload.key, status: "settled", actual: payload.actual, txnKey: txnKey("settle", payload.key), kind: "settle" })
          if (!closed) {
            const h = yield* repo.hold(payload.key)
            if (!h) return yield* new HoldNotFound({ key: payload.key })
            if (h.status !== "settled") return yield* new HoldNotActive({ key: h.key, status: h.status })
            return [new Settlement({ key: h.key, held: h.amount, charged: h.charged, returned: h.amount - h.charged, capped: false }), undefined] as const
          }
          const settlement = new Settlement({
            key: payload.key,
            held: closed.amount,
            charged: closed.charged,
            returned: closed.amount - closed.charged,
            capped: payload.actual > closed.amount
          })
          return [settlement, closed.account] as const
        })
      )

    const release = (payload: Release) =>
      transact(
        Effect.gen(function*() {
          const closed = yield* repo.close({ key: payload.key, status: "released", actual: 0, txnKey: txnKey("release", payload.key), kind: "release" })
          if (!closed) {
            const h = yield* repo.hold(payload.key)
            return [h ? toHold(h) : null, undefined] as const
          }
          return [new Hold({ key: payload.key, amount: closed.amount, status: "released", charged: 0, expiresAt: closed.expiresAt }), closed.account] as const
        })
      )

    return instrument("Credit", Credit.of({
      Reserve: ({ payload }) => reserve(payload),
      Settle: ({ payload }) => settle(payload),
      Release: ({ payload }) => release(payload),
      // the same commands for callers that are durable themselves and retry until answered
      ReserveVolatile: ({ payload }) => reserve(payload),
      SettleVolatile: ({ payload }) => settle(payload),
      ReleaseVolatile: ({ payload }) => release(payload),
      Grant: ({ payload }) =>
        transact(
          Effect.map(repo.grant({ amount: payload.amount, txnKey: txnKey("grant", payload.key), reason: payload.reason }), (after) => [undefined, after] as const)
        ).pipe(Effect.map(snapshot)),

      Reverse: ({ payload }) =>
        transact(
          Effect.map(repo.reverse({ amount: payload.amount, txnKey: txnKey("reverse", payload.key), reason: payload.reason }), (after) => [undefined, after] as const)
        ).pipe(Effect.map(snapshot)),

      SetOverdraft: ({ payload }) =>
        transact(Effect.map(repo.setOverdraft(payload.limit), (after) => [undefined, after] as const)).pipe(Effect.map(snapshot)),

      ExpireHolds: () =>
        Effect.gen(function*() {
          // the sweeper asks: look even if this instance's memory says nothing is due yet
          nextExpiry = Math.min(nextExpiry ?? 0, Date.now())
          yield* transact(Effect.succeed([undefined, undefined] as const))
          return balance.reserved
        }),

      Balance: () => Effect.sync(snapshot),

      ScopeUsage: ({ payload }) =>
        Effect.forEach(payload.scopes, (id) => Effect.map(repo.scopeUsage(id), (used) => [id, used] as const)).pipe(
          Effect.map((pairs) => Object.fromEntries(pairs)),
          Effect.orDie
        ),

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
                  skill: r.skill,
                  apiKeyId: r.api_key_id,
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
 * Credit holds open across the cluster, read at each scrape of `/metrics` (the same figure on
 * every runner: a dashboard takes the max).
 */
export const layerHoldGauges: Layer.Layer<never, never, SqlClient.SqlClient> = Layer.effectDiscard(
  Effect.gen(function*() {
    const sources = yield* Effect.serviceOption(Telemetry.MetricSources)
    if (Option.isNone(sources)) return
    const sql = yield* SqlClient.SqlClient
    yield* sources.value.registerEffect(Repo.openHolds.pipe(
      Effect.provideService(SqlClient.SqlClient, sql),
      Effect.map(({ credits, holds }) => [
        { name: "troupe_credit_holds_open", help: "Credit holds open (reserved, not yet settled or released), cluster-wide", value: holds },
        { name: "troupe_credit_held", help: "Credits reserved by open holds, cluster-wide", value: credits }
      ])
    ))
  })
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
