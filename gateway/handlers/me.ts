/** Handlers of `/v1/me`. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { DeleteAccount, UpdateProfile, User } from "../../entities/user/protocol.ts"
import * as Ids from "../../runtime/Ids.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { GatewayConfig } from "../Config.ts"
import * as Policy from "../Policy.ts"
import * as Tokens from "../Tokens.ts"
import { Uploads } from "../../uploads/Uploads.ts"
import { call, noContent, toMe, withoutSessionCookies } from "./common.ts"

export const layer = HttpApiBuilder.group(TroupeApi, "me", (handlers) =>
  Effect.gen(function*() {
    const users = yield* User.client
    const tokens = yield* Tokens.Tokens
    const config = yield* GatewayConfig
    const uploads = yield* Effect.serviceOption(Uploads)
    return handlers
      .handle("get", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Profile)
          return toMe(yield* call(users(principal.userId).Profile()))
        }))
      .handle("update", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          // size, NUL characters and unpaired surrogates: refused by the schema (SettingsInput)
          const profile = yield* call(users(principal.userId).UpdateProfile(
            new UpdateProfile({
              key: Ids.make("p", 16),
              ...(payload.display_name !== undefined ? { displayName: payload.display_name } : {}),
              ...(payload.settings !== undefined ? { settings: payload.settings } : {})
            })
          ))
          return toMe(profile)
        }))
      .handle("delete", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const revoked = yield* call(users(principal.userId).DeleteAccount(new DeleteAccount({})))
          yield* tokens.revoke([...revoked, ...Option.toArray(principal.familyId)])
          // the account's files go with it: its uploads key is destroyed and the blobs deleted
          if (Option.isSome(uploads)) {
            yield* uploads.value.shredUser(principal.userId).pipe(Effect.catchAll((e) => Effect.logError("could not shred the account's files", e)))
          }
          return withoutSessionCookies(noContent(), config)
        }))
      .handle("sessions", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const sessions = yield* call(users(principal.userId).Sessions())
          return {
            sessions: sessions.map((s) => ({
              id: s.familyId,
              created_at: s.createdAt,
              last_used_at: s.lastUsedAt,
              user_agent: s.userAgent,
              ip: s.ip,
              current: Option.contains(principal.familyId, s.familyId)
            }))
          }
        }))
  }))

