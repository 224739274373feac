/**
 * Handlers of `/v1/apps`: listing apps and skills, and invoking a skill. An invocation is sent to
 * the app's `SkillCall` entity on a runner (`skills/Calls.ts`), which holds the skill's estimate on
 * the caller's credit account (under the API key's spend cap, if any), runs the skill where the
 * skill host is, settles the actual price or releases the hold when the skill fails.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { SkillCall } from "../../skills/Calls.ts"
import { Skills } from "../../skills/Skills.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { entity, fromEntity } from "../Errors.ts"
import * as Policy from "../Policy.ts"

export const layer = HttpApiBuilder.group(TroupeApi, "apps", (handlers) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const calls = yield* SkillCall.client
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
          // volatile, sent once: a retry could run the skill twice
          return yield* entity(calls(path.app).Invoke({
            skill: path.skill,
            input: payload.input,
            userId: principal.userId,
            scope: Policy.spendScope(principal),
            apiKeyId: Option.getOrUndefined(Option.map(principal.apiKey, (k) => k.keyId))
          }))
        }))
  }))
