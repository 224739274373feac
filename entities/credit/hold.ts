/**
 * The credit hold saga, written once: reserve an amount on an account, run the work, then settle
 * what the work reports it cost (success) or release the whole hold (failure, interruption). A
 * skill call and a chat turn (and each skill call inside a turn) go through `withHold`.
 *
 * The hold's key makes every step idempotent: a retried or replayed saga with the same key
 * reserves, settles or releases once. A hold already settled by an earlier attempt is not settled
 * again; one already released or expired is not run on (`HoldClosed`). The work never charges more
 * than it held: a price above the hold is refused (`HoldExceeded`) and the hold released.
 *
 * Interruption: the hold is released, except for a `durable` caller (a chat turn), which is
 * interrupted when its runner stops and runs again elsewhere with the same key: its hold stays
 * (and expires if nobody comes back). A durable caller that cancels its work fails it instead.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { retryTransient } from "../../runtime/Cluster.ts"
import { Credit, Hold, HoldStatus, type Purpose, Release, Reserve, Settle, type SpendScope } from "./protocol.ts"

/** A client of one credit account (`(yield* Credit.client)(accountId)`). */
export type Account = ReturnType<Effect.Effect.Success<typeof Credit.client>>

/** The hold was released or expired before the work could be charged: nothing was charged. */
export class HoldClosed extends Schema.TaggedError<HoldClosed>()("HoldClosed", {
  key: Schema.String,
  status: HoldStatus
}) {}

/** The work reported a price above its hold: refused, nothing was charged. */
export class HoldExceeded extends Schema.TaggedError<HoldExceeded>()("HoldExceeded", {
  key: Schema.String,
  held: Schema.Number,
  price: Schema.Number
}) {}

/** What the work returns: its result and what it cost (whole credits, at most the hold). */
export interface Priced<A> {
  readonly value: A
  readonly price: number
}

/** What a saga did: the work's result, what was held, and what was charged. */
export interface Charged<A> {
  readonly value: A
  readonly held: number
  readonly charged: number
}

/** How to hold. */
export interface HoldOptions {
  /** The idempotency key: one key, one hold, whatever is retried. */
  readonly key: string
  /** Credits to hold; 0 runs the work without a hold (and it must cost nothing). */
  readonly amount: number
  /** What the hold pays for: the reason, skill and API key its ledger rows show. */
  readonly purpose: Purpose
  /** A spend cap the hold counts against (an API key's). */
  readonly scope?: SpendScope | undefined
  /**
   * The caller is durable itself and retries until answered (a chat turn): use the volatile
   * commands, which skip the cluster's message storage. Otherwise the commands are persisted, and
   * the cluster answers a repeated Settle/Release with its first reply: give each such saga its own
   * key. (A refused Reserve is not remembered: the same key may hold once credits are there.)
   */
  readonly durable?: boolean | undefined
}

/**
 * Return a hold whole (a turn cancelled before it ran, a chat deleted): retried while the cluster
 * moves shards; if the account cannot be reached the hold expires on its own.
 */
export const releaseHold = (account: Account, options: { readonly key: string; readonly durable?: boolean | undefined }): Effect.Effect<void> => {
  const command = new Release({ key: options.key })
  return retryTransient(options.durable ? account.ReleaseVolatile(command) : account.Release(command)).pipe(
    Effect.catchAllCause((cause) => Effect.logError("Could not release a credit hold (it expires on its own)", cause).pipe(Effect.annotateLogs({ hold: options.key }))),
    Effect.asVoid
  )
}

const noHold = (key: string) => new Hold({ key, amount: 0, status: "held", charged: 0, expiresAt: new Date(0) })

/**
 * Hold `options.amount` on `account`, run `use` with the hold, then settle the price it reports,
 * or release the hold when it fails or is interrupted (the failure is passed on as it was).
 */
export const withHold = <A, E, R>(
  account: Account,
  options: HoldOptions,
  use: (hold: Hold) => Effect.Effect<Priced<A>, E, R>
) => {
  const { amount, durable, key, purpose, scope } = options
  const reserved = Effect.suspend(() => {
    const reserve = new Reserve({ key, amount, purpose, ...(scope ? { scope } : {}) })
    return durable ? account.ReserveVolatile(reserve) : account.Reserve(reserve)
  })
  const release = releaseHold(account, options)
  const settle = (hold: Hold, price: number) =>
    Effect.gen(function*() {
      if (price > hold.amount) {
        yield* Effect.logError("Work priced above its credit hold: nothing charged").pipe(Effect.annotateLogs({ hold: key, held: hold.amount, price }))
        if (hold.amount > 0 && hold.status !== "settled") yield* release
        return yield* new HoldExceeded({ key, held: hold.amount, price })
      }
      // nothing held, or charged by an earlier attempt: there is nothing (more) to settle
      if (hold.amount === 0 || hold.status === "settled") return { held: hold.amount, charged: hold.charged }
      const command = new Settle({ key, actual: price })
      const settled = yield* retryTransient(durable ? account.SettleVolatile(command) : account.Settle(command)).pipe(
        Effect.catchTags({
          HoldNotActive: (e) => Effect.fail(new HoldClosed({ key, status: e.status })),
          HoldNotFound: () => Effect.dieMessage(`credit hold ${key} vanished before it was settled`)
        })
      )
      return { held: settled.held, charged: settled.charged }
    })

  return Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const hold = amount > 0 ? yield* restore(retryTransient(reserved)) : noHold(key)
      if (hold.status === "released" || hold.status === "expired") return yield* new HoldClosed({ key, status: hold.status })
      const exit = yield* Effect.exit(restore(use(hold)))
      if (Exit.isFailure(exit)) {
        // an earlier attempt's charge stands; a durable caller that is stopped (not its work
        // failing) runs again with the same key and finds its hold; anything else is returned
        const keep = hold.status === "settled" || (durable && Exit.isInterrupted(exit))
        if (amount > 0 && !keep) yield* release
        return yield* Effect.failCause(exit.cause)
      }
      const { held, charged } = yield* settle(hold, exit.value.price)
      return { value: exit.value.value, held, charged } satisfies Charged<A>
    })
  )
}
