/**
 * Handlers of `/v1/apps`: listing apps and skills, and invoking a skill. An invocation holds
 * the skill's estimate on the caller's credit account (under the API key's spend cap, if any)
 * with `withHold`: the actual price is settled, the hold released when the skill fails.
 * `invokeSkill` is that invocation, shared by every entry that calls a skill for a caller (this
 * group, the MCP server at `/mcp`).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { withHold } from "../../entities/credit/hold.ts"
import { Credit } from "../../entities/credit/protocol.ts"
import * as Ids from "../../runtime/Ids.ts"
import { Skills } from "../../skills/Skills.ts"
import { TroupeApi } from "../Api.ts"
import type { Principal } from "../Auth.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { entity, fromEntity } from "../Errors.ts"
import * as Policy from "../Policy.ts"

/**
 * Call a skill for `principal` as a REST call does: the policy (scope `skills` or
 * `skills:<app>`), the estimate held on the caller's credits under the key's spend cap, the
 * invocation, then the actual price settled (or the hold released on failure).
 */
export const invokeSkill = (principal: Principal, call: { readonly app: string; readonly skill: string; readonly input: unknown }) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const accounts = yield* Credit.client
    yield* Policy.require(principal, Policy.InvokeSkill(call.app))
    const estimate = yield* Effect.mapError(skills.estimate(call), fromEntity)
    // not `call`: a retry would run the skill again (withHold retries each credit command itself)
    const invoked = yield* entity(withHold(
      accounts(principal.userId),
      { key: `skill:${Ids.make("s")}`, amount: estimate.credits, scope: Policy.spendScope(principal) },
      () => Effect.map(skills.invoke({ ...call, userId: principal.userId }), (out) => ({ value: out.result, price: out.credits }))
    ))
    return { result: invoked.value, credits_charged: invoked.charged }
  })

export const layer = HttpApiBuilder.group(TroupeApi, "apps", (handlers) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const context = yield* Effect.context<Skills | Effect.Effect.Context<typeof Credit.client>>()
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
        Effect.flatMap(CurrentPrincipal, (principal) =>
          Effect.provide(invokeSkill(principal, { app: path.app, skill: path.skill, input: payload.input }), context)))
  }))
