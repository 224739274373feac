/**
 * Handlers of `/v1/apps`: listing apps and skills, and invoking a skill. An invocation holds
 * the skill's estimate on the caller's credit account first (under the API key's spend cap, if
 * any), then settles the actual price, or releases the hold when the skill fails. The hold key
 * is the invocation's id, so a retried settle or release counts once.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { Credit, Release, Reserve, Settle } from "../../entities/credit/protocol.ts"
import * as Ids from "../../runtime/Ids.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import { Skills } from "../../skills/Skills.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { fromEntity } from "../Errors.ts"
import * as Policy from "../Policy.ts"
import { call } from "./common.ts"

export const layer = HttpApiBuilder.group(TroupeApi, "apps", (handlers) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const accounts = yield* Credit.client
    return handlers
      .handle("list", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadApps)
          return { apps: yield* skills.list }
        }))
      .handle("get", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadApps)
          return yield* Effect.mapError(skills.get(path.app), fromEntity)
        }))
      .handle("invoke", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.InvokeSkill(path.app))
          const estimate = yield* Effect.mapError(skills.estimate({ app: path.app, skill: path.skill, input: payload.input }), fromEntity)
          const account = accounts(principal.userId)
          const key = `skill:${Ids.make("s", 20)}`
          const scope = Policy.spendScope(principal)
          if (estimate.credits > 0) {
            yield* call(account.Reserve(new Reserve({ key, amount: estimate.credits, ...(scope ? { scope } : {}) })))
          }
          const outcome = yield* Effect.exit(skills.invoke({ app: path.app, skill: path.skill, input: payload.input, userId: principal.userId }))
          if (Exit.isFailure(outcome)) {
            if (estimate.credits > 0) {
              yield* retryTransient(account.Release(new Release({ key }))).pipe(
                Effect.catchAllCause((cause) => Effect.logError("Could not release a skill's hold (it expires on its own)", cause).pipe(Effect.annotateLogs({ hold: key })))
              )
            }
            return yield* Effect.fail(Option.match(Cause.failureOption(outcome.cause), { onNone: () => fromEntity({ _tag: "Defect" }), onSome: fromEntity }))
          }
          const charged = Math.min(outcome.value.credits, estimate.credits)
          if (estimate.credits > 0) {
            yield* call(account.Settle(new Settle({ key, actual: charged })))
          }
          return { result: outcome.value.result, credits_charged: charged }
        }))
  }))
