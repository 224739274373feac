/**
 * The `Completion` entity: one OpenAI-compatible completion, run on a runner (where the providers
 * and skills are) by the same mate runner as a chat's turn, billed the same way: the turn's tokens
 * under one hold keyed by the completion (settled with what was used, also when the caller goes
 * away mid-stream), each skill call under its own. It streams its events back to the gateway that
 * called it; nothing is journaled (the OpenAI API is stateless: the caller sends the conversation).
 */
import * as Entity from "@effect/cluster/Entity"
import type * as Sharding from "@effect/cluster/Sharding"
import * as Rpc from "@effect/rpc/Rpc"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Completion, CompletionToolCall } from "../../entities/chat/completion.ts"
import { withHold } from "../../entities/credit/hold.ts"
import { Credit, type InsufficientCredits, Purpose, SpendScope } from "../../entities/credit/protocol.ts"
import * as Ids from "../../runtime/Ids.ts"
import type * as Mate from "./Mate.ts"
import { MateRunner } from "./Mate.ts"

/** What a completion streams back. */
export const CompletionEvent = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("delta"), text: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("skill"), app: Schema.String, skill: Schema.String, ok: Schema.Boolean }),
  Schema.Struct({
    kind: Schema.Literal("end"),
    finishReason: Schema.Literal("stop", "length", "tool_calls"),
    toolCalls: Schema.Array(CompletionToolCall),
    inputTokens: Schema.Number,
    outputTokens: Schema.Number,
    /** Credits for the tokens (skill calls are charged on their own). */
    credits: Schema.Number
  })
)
export type CompletionEvent = typeof CompletionEvent.Type

/** The completion could not be done; `status` is the HTTP status it suggests. */
export class CompletionFailed extends Schema.TaggedError<CompletionFailed>()("CompletionFailed", {
  status: Schema.Number,
  code: Schema.String,
  message: Schema.String
}) {}

/** Run a completion for `ownerId`'s mate, paid by `accountId` (within `scope`, an API key's cap). */
export class RunCompletion extends Schema.Class<RunCompletion>("troupe/Completion/Run")({
  ownerId: Ids.Id,
  mateId: Ids.Id,
  accountId: Ids.Id,
  scope: Schema.optional(SpendScope),
  /** The model the caller asked for (named on the ledger; the mate's id when absent). */
  model: Schema.optional(Schema.String.pipe(Schema.maxLength(180))),
  /** The API key that calls (named on the ledger). */
  apiKeyId: Schema.optional(Ids.Id),
  completion: Completion
}) {}

/** The entity (volatile: a completion lives as long as its HTTP request). */
export const CompletionEntity = Entity.make("Completion", [
  Rpc.make("Run", { payload: RunCompletion, success: CompletionEvent, error: CompletionFailed, stream: true })
])

/** A hold the credit account refused. */
const refused = (e: { readonly _tag: string } | InsufficientCredits): CompletionFailed => {
  if (e._tag === "InsufficientCredits") {
    const i = e as InsufficientCredits
    return new CompletionFailed({
      status: 402,
      code: i.scope ? "spend_cap_exceeded" : "insufficient_credits",
      message: `This completion needs up to ${i.requested} credits; ${i.available} available${i.scope ? " under the API key's spend cap" : ""}`
    })
  }
  if (e._tag === "KeyConflict" || e._tag === "HoldClosed" || e._tag === "HoldExceeded") {
    return new CompletionFailed({ status: 409, code: "credit_conflict", message: "The completion's credit hold conflicts with an earlier one" })
  }
  return new CompletionFailed({ status: 503, code: "unavailable", message: "The credit account is busy or restarting; retry" })
}

const statusOf = (code: string): number =>
  code === "insufficient_credits" || code === "spend_cap_exceeded"
    ? 402
    : code === "mate_not_found"
    ? 404
    : code === "context_exceeded" || code === "provider_rejected"
    ? 400
    : code === "no_provider" || code === "model_not_served"
    ? 503
    : 502

/** Host completions, run by this process's mate runner. */
export const layer: Layer.Layer<never, never, Sharding.Sharding | Mate.MateRunner> =
  CompletionEntity.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const mates = yield* MateRunner
      const credits = yield* Credit.client
      const completionId = address.entityId
      return CompletionEntity.of({
        Run: ({ payload }) =>
          Stream.unwrapScoped(Effect.gen(function*() {
            const mailbox = yield* Mailbox.make<CompletionEvent, CompletionFailed>()
            const account = credits(payload.accountId)
            const holdKey = `completion:${completionId}`
            const turn: Mate.MateTurn = {
              chatId: `completion:${completionId}`,
              turnId: completionId,
              ownerId: payload.ownerId,
              accountId: payload.accountId,
              holdKey,
              ...(payload.scope ? { scope: payload.scope } : {}),
              ...(payload.apiKeyId ? { apiKeyId: payload.apiKeyId } : {}),
              mateId: payload.mateId,
              text: "",
              history: [],
              completion: payload.completion
            }
            let used = 0
            let mate: Fiber.RuntimeFiber<Mate.MateResult, Mate.MateFailed> | undefined
            let gone = false
            const skillNames = new Map<string, { readonly app: string; readonly skill: string }>()
            const onEvent = (event: Mate.MateEvent) => {
              if (event.kind === "delta") mailbox.unsafeOffer({ kind: "delta", text: event.text })
              else if (event.kind === "skill_call") skillNames.set(event.callId, { app: event.app, skill: event.skill })
              else if (event.kind === "skill_result") mailbox.unsafeOffer({ kind: "skill", ...(skillNames.get(event.callId) ?? { app: "", skill: "" }), ok: event.ok })
              else if (event.kind === "cost") used = event.credits
            }
            const work = Effect.gen(function*() {
              if (!mates.available) {
                return yield* new CompletionFailed({ status: 503, code: "no_provider", message: "No LLM provider is configured on this server" })
              }
              const estimate = Math.max(1, yield* mates.estimate(turn))
              // the hold saga settles what the mate used however it ended: answered, failed, or stopped because the caller left
              const charged = yield* withHold(account, {
                key: holdKey,
                amount: estimate,
                purpose: Purpose.model(payload.model ?? payload.mateId, payload.apiKeyId),
                ...(payload.scope ? { scope: payload.scope } : {})
              }, (hold) =>
                Effect.gen(function*() {
                  if (gone) return { value: Exit.interrupt(FiberId.none) as Exit.Exit<Mate.MateResult, Mate.MateFailed>, price: 0 }
                  mate = yield* Effect.fork(mates.run({ ...turn, budget: hold.amount }, onEvent))
                  const exit = yield* Fiber.await(mate)
                  return { value: exit, price: Math.min(used, hold.amount) }
                })).pipe(Effect.catchAll((e) => Effect.fail(refused(e))))
              const exit = charged.value
              if (Exit.isSuccess(exit)) {
                const result = exit.value
                return yield* mailbox.offer({
                  kind: "end",
                  finishReason: result.finishReason,
                  toolCalls: result.clientToolCalls,
                  inputTokens: result.usage.inputTokens,
                  outputTokens: result.usage.outputTokens,
                  credits: charged.charged
                })
              }
              const failure = Cause.failureOption(exit.cause)
              if (Option.isSome(failure)) {
                return yield* new CompletionFailed({ status: statusOf(failure.value.code), code: failure.value.code, message: failure.value.message })
              }
              // stopped because the caller left: nobody listens
            })
            // not tied to the caller's stream: the hold is closed whatever the caller does
            yield* work.pipe(Mailbox.into(mailbox), Effect.forkDaemon)
            // the caller leaving stops the mate (what it used is still charged)
            yield* Effect.addFinalizer(() =>
              Effect.suspend(() => {
                gone = true
                return mate ? Fiber.interrupt(mate) : Effect.void
              }))
            return Mailbox.toStream(mailbox)
          }))
      })
    }),
    { concurrency: "unbounded", maxIdleTime: "1 minute" }
  )
