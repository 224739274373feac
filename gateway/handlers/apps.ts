/**
 * Handlers of `/v1/apps`: listing apps and skills, and invoking a skill. An invocation is sent to
 * one of the app's `SkillCall` entities (chosen per call, so an app's calls spread over the
 * runners; `skills/Calls.ts`), which holds the skill's estimate on
 * the caller's credit account (under the API key's spend cap, if any), runs the skill where the
 * skill host is, settles the actual price or releases the hold when the skill fails.
 * `invokeSkill` is that invocation, shared by every entry that calls a skill for a caller (this
 * group, the MCP server at `/mcp`).
 */
import type * as Sharding from "@effect/cluster/Sharding"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { entityIdOf, SkillCall } from "../../skills/Calls.ts"
import { Skills } from "../../skills/Skills.ts"
import { TroupeApi } from "../Api.ts"
import type { Principal } from "../Auth.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { entity, fromEntity } from "../Errors.ts"
import * as Policy from "../Policy.ts"

/**
 * Call a skill for `principal` as a REST call does: the policy (scope `skills` or
 * `skills:<app>`), then one `SkillCall.Invoke` to one of the app's entities (`entityIdOf`, at
 * random) on a runner, which holds the estimate on the caller's credits under the key's spend
 * cap, runs the skill and settles the actual price (or releases the hold on failure).
 */
export const invokeSkill = (principal: Principal, call: { readonly app: string; readonly skill: string; readonly input: unknown }) =>
  Effect.gen(function*() {
    const calls = yield* SkillCall.client
    yield* Policy.require(principal, Policy.InvokeSkill(call.app))
    // volatile, sent once: a retry could run the skill twice
    return yield* entity(calls(entityIdOf(call.app)).Invoke({
      skill: call.skill,
      input: call.input,
      userId: principal.userId,
      scope: Policy.spendScope(principal),
      apiKeyId: Option.getOrUndefined(Option.map(principal.apiKey, (k) => k.keyId))
    }))
  })

export const layer = HttpApiBuilder.group(TroupeApi, "apps", (handlers) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const context = yield* Effect.context<Sharding.Sharding>()
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
