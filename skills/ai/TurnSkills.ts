/**
 * A turn's skills from the skills registry: the tools a mate's allowlist grants (every skill of an
 * `app` entry, `app.*`, or one `app.skill`), and an invoker that checks a call's input against the
 * skill's schema, holds the call's estimate under its own key (`<turn hold key>:<call id>`), runs
 * it, and settles what it cost — or releases the hold when it fails.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Metrics from "../../runtime/Metrics.ts"
import * as Errors from "../Errors.ts"
import { TextGenerator } from "../firstparty/Text.ts"
import { WebSettings } from "../firstparty/Web.ts"
import { Skills } from "../Skills.ts"
import * as Loop from "./Loop.ts"
import { allows, type TurnIdentity, TurnSkills } from "./Mate.ts"

/** Credit holds as the turn's skill calls use them (one owner: the credit entity's hold helper). */
export interface Holds {
  /**
   * Hold `amount` for `turn.accountId` under `key` for a call of `skill` (`<app>.<skill>`, named
   * on the ledger), run `work`, settle the credits it reports (release when it fails, is
   * interrupted, or reports nothing). Idempotent by `key`.
   */
  readonly withHold: <A>(
    turn: TurnIdentity,
    key: string,
    skill: string,
    amount: number,
    work: Effect.Effect<{ readonly value: A; readonly credits: number }, Loop.ToolError>
  ) => Effect.Effect<A, Loop.ToolError>
  /** Where the hold `key` stands: open (held), closed (settled, released, expired), or absent. */
  readonly status: (turn: TurnIdentity, key: string) => Effect.Effect<"open" | "closed" | "absent">
  /** Return the hold `key` whole. */
  readonly release: (turn: TurnIdentity, key: string) => Effect.Effect<void>
}

const toolError = (e: Errors.InvokeError) => {
  const d = Errors.describe(e)
  return new Loop.ToolError({ code: d.code, message: d.message })
}

/** The tools and invoker over the skills registry and the given holds. */
export const layer = (holds: Holds): Layer.Layer<TurnSkills, never, Skills> =>
  Layer.effect(
    TurnSkills,
    Effect.gen(function*() {
      const skills = yield* Skills
      // what first-party skills look for, when this process has them (the model, the fetch settings)
      const text = yield* Effect.serviceOption(TextGenerator)
      const web = yield* Effect.serviceOption(WebSettings)
      const withServices = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => {
        let out = effect
        if (Option.isSome(text)) out = Effect.provideService(out, TextGenerator, text.value)
        if (Option.isSome(web)) out = Effect.provideService(out, WebSettings, web.value)
        return out
      }
      return TurnSkills.of({
        tools: (allowlist) =>
          allowlist.length === 0
            ? Effect.succeed([])
            : Effect.map(skills.list, (apps) =>
              apps.flatMap((app) =>
                app.skills.filter((s) => allows(allowlist, app.id, s.name)).map((s): Loop.ToolDef => ({
                  name: Loop.toolName(app.id, s.name),
                  app: app.id,
                  skill: s.name,
                  description: s.description,
                  parameters: s.input as Record<string, unknown>,
                  sideEffects: s.side_effects,
                  timeoutMs: s.timeout_ms
                }))
              )),
        recover: (turn, attempt) =>
          Effect.gen(function*() {
            let closed = 0
            const close = (key: string) =>
              Effect.flatMap(holds.status(turn, key), (status) =>
                status === "open" ? Effect.as(Effect.tap(holds.release(turn, key), () => void closed++), status) : Effect.succeed(status))
            for (let a = 1; a < attempt; a++) {
              yield* close(`${turn.holdKey}:a${a}x`)
              // calls are numbered in order; parallel ones may leave gaps, never more than one step's calls
              let misses = 0
              for (let n = 1; misses < Loop.maxParallelCalls && n < 1000; n++) {
                misses = (yield* close(`${turn.holdKey}:a${a}c${n}`)) === "absent" ? misses + 1 : 0
              }
            }
            return closed
          }),
        invoker: (turn) => ({
          validate: (tool, input) => Effect.asVoid(Effect.mapError(skills.estimate({ app: tool.app, skill: tool.skill, input }), toolError)),
          invoke: (tool, input, callId) =>
            Effect.gen(function*() {
              const estimate = yield* Effect.mapError(skills.estimate({ app: tool.app, skill: tool.skill, input }), toolError)
              const run = Effect.map(
                Effect.mapError(withServices(skills.invoke({
                  app: tool.app,
                  skill: tool.skill,
                  input,
                  userId: turn.ownerId,
                  calledBy: { chatId: turn.chatId, turnId: turn.turnId, callId, apiKeyId: turn.apiKeyId ?? Metrics.apiKeyOfScope(turn.scope?.id) }
                })), toolError),
                (r) => ({ value: { output: r.result, credits: r.credits }, credits: r.credits })
              )
              return yield* (estimate.credits > 0 ? holds.withHold(turn, `${turn.holdKey}:${callId}`, `${tool.app}.${tool.skill}`, estimate.credits, run) : Effect.map(run, (r) => r.value))
            })
        })
      })
    })
  )
