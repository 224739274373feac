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
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Completion, CompletionToolCall } from "../../entities/chat/completion.ts"
import { Credit, Release, Reserve, Settle, SpendScope } from "../../entities/credit/protocol.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
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
  completion: Completion
}) {}

/** The entity (volatile: a completion lives as long as its HTTP request). */
export const CompletionEntity = Entity.make("Completion", [
  Rpc.make("Run", { payload: RunCompletion, success: CompletionEvent, error: CompletionFailed, stream: true })
])

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
              mateId: payload.mateId,
              text: "",
              history: [],
              completion: payload.completion
            }
            let used = 0
            const skillNames = new Map<string, { readonly app: string; readonly skill: string }>()
            const work = Effect.gen(function*() {
              if (!mates.available) {
                return yield* new CompletionFailed({ status: 503, code: "no_provider", message: "No LLM provider is configured on this server" })
              }
              const estimate = Math.max(1, yield* mates.estimate(turn))
              const held = yield* retryTransient(account.ReserveVolatile(new Reserve({ key: holdKey, amount: estimate, ...(payload.scope ? { scope: payload.scope } : {}) }))).pipe(
                Effect.catchAll((e) =>
                  e._tag === "InsufficientCredits"
                    ? new CompletionFailed({
                      status: 402,
                      code: e.scope ? "spend_cap_exceeded" : "insufficient_credits",
                      message: `This completion needs up to ${e.requested} credits; ${e.available} available${e.scope ? " under the API key's spend cap" : ""}`
                    })
                    : e._tag === "KeyConflict"
                    ? new CompletionFailed({ status: 409, code: "credit_conflict", message: e.message })
                    : new CompletionFailed({ status: 503, code: "unavailable", message: "The credit account is busy or restarting; retry" })
                )
              )
              // whatever happens next (end, failure, the caller leaving), the hold is closed once with what was used
              return yield* Effect.acquireUseRelease(
                Effect.succeed(held),
                () =>
                  mates.run(turn, (event) => {
                    if (event.kind === "delta") mailbox.unsafeOffer({ kind: "delta", text: event.text })
                    else if (event.kind === "skill_result") mailbox.unsafeOffer({ kind: "skill", ...(skillNames.get(event.callId) ?? { app: "", skill: "" }), ok: event.ok })
                    else if (event.kind === "skill_call") skillNames.set(event.callId, { app: event.app, skill: event.skill })
                    else if (event.kind === "cost") used = event.credits
                  }).pipe(Effect.mapError((e) => {
                    used = e.credits
                    return new CompletionFailed({ status: statusOf(e.code), code: e.code, message: e.message })
                  })),
                (hold, exit) =>
                  Effect.asVoid<unknown, unknown, never>(
                    used > 0 || Exit.isSuccess(exit)
                      ? retryTransient(account.SettleVolatile(new Settle({ key: holdKey, actual: Math.min(used, hold.amount) })))
                      : retryTransient(account.ReleaseVolatile(new Release({ key: holdKey })))
                  ).pipe(Effect.catchAllCause((cause) => Effect.logError("Could not close a completion's hold (it expires on its own)", cause)))
              )
            })
            yield* work.pipe(
              Effect.flatMap((result) =>
                mailbox.offer({
                  kind: "end",
                  finishReason: result.finishReason,
                  toolCalls: result.clientToolCalls,
                  inputTokens: result.usage.inputTokens,
                  outputTokens: result.usage.outputTokens,
                  credits: Math.min(result.credits, used || result.credits)
                })
              ),
              Mailbox.into(mailbox),
              Effect.forkScoped
            )
            return Mailbox.toStream(mailbox)
          }))
      })
    }),
    { concurrency: "unbounded", maxIdleTime: "1 minute" }
  )
