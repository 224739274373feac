/** Handlers of `/v1/mates`. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { CreateMate, DeleteMate, UpdateMate, User } from "../../entities/user/protocol.ts"
import type { Mate } from "../../entities/user/protocol.ts"
import * as Ids from "../../runtime/Ids.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import * as Policy from "../Policy.ts"
import { call, noContent } from "./common.ts"

const toMate = (m: Mate) => ({
  id: m.mateId,
  name: m.name,
  system_prompt: m.systemPrompt,
  model: m.model,
  allowed_skills: m.allowedSkills,
  is_default: m.isDefault,
  created_at: m.createdAt,
  updated_at: m.updatedAt
})

export const layer = HttpApiBuilder.group(TroupeApi, "mates", (handlers) =>
  Effect.gen(function*() {
    const users = yield* User.client
    return handlers
      .handle("list", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadChats)
          return { mates: (yield* call(users(principal.userId).Mates())).map(toMate) }
        }))
      .handle("get", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadChats)
          return toMate(yield* call(users(principal.userId).GetMate({ mateId: path.id })))
        }))
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const mate = yield* call(users(principal.userId).CreateMate(
            new CreateMate({
              mateId: Ids.make("m", 16),
              name: payload.name,
              systemPrompt: payload.system_prompt ?? "",
              model: payload.model ?? "default",
              allowedSkills: payload.allowed_skills ?? []
            })
          ))
          return toMate(mate)
        }))
      .handle("update", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const mate = yield* call(users(principal.userId).UpdateMate(
            new UpdateMate({
              key: Ids.make("q", 16),
              mateId: path.id,
              ...(payload.name !== undefined ? { name: payload.name } : {}),
              ...(payload.system_prompt !== undefined ? { systemPrompt: payload.system_prompt } : {}),
              ...(payload.model !== undefined ? { model: payload.model } : {}),
              ...(payload.allowed_skills !== undefined ? { allowedSkills: payload.allowed_skills } : {})
            })
          ))
          return toMate(mate)
        }))
      .handle("delete", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          yield* call(users(principal.userId).DeleteMate(new DeleteMate({ mateId: path.id })))
          return noContent()
        }))
  }))
