/** Handlers of `/v1/me` and `/v1/api_keys`. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { CreateApiKey, DeleteAccount, RevokeApiKey, UpdateProfile, User } from "../../entities/user/protocol.ts"
import type { ApiKeyInfo } from "../../entities/user/protocol.ts"
import * as Secrets from "../../entities/user/secrets.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { GatewayConfig } from "../Config.ts"
import { fail } from "../Errors.ts"
import * as Policy from "../Policy.ts"
import * as Tokens from "../Tokens.ts"
import { call, noContent, toMe, withoutSessionCookies } from "./common.ts"

const toApiKey = (k: ApiKeyInfo) => ({
  id: k.keyId,
  name: k.name,
  scopes: k.scopes,
  expires_at: k.expiresAt,
  spend_cap: k.spendCap,
  created_at: k.createdAt
})

const me = HttpApiBuilder.group(TroupeApi, "me", (handlers) =>
  Effect.gen(function*() {
    const users = yield* User.client
    const tokens = yield* Tokens.Tokens
    const config = yield* GatewayConfig
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
          const settings = payload.settings === undefined ? undefined : JSON.stringify(payload.settings)
          if (settings !== undefined && settings.length > 16_384) {
            return yield* fail(400, "invalid_request", "settings must be at most 16 KB of JSON", { issues: [{ path: "settings", message: "too large" }] })
          }
          if (settings !== undefined && settings.includes("\\u0000")) {
            return yield* fail(400, "invalid_request", "settings must not contain NUL characters", { issues: [{ path: "settings", message: "must not contain NUL characters" }] })
          }
          const profile = yield* call(users(principal.userId).UpdateProfile(
            new UpdateProfile({
              key: Secrets.randomId("p", 16),
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

const apiKeys = HttpApiBuilder.group(TroupeApi, "api_keys", (handlers) =>
  Effect.gen(function*() {
    const users = yield* User.client
    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          if (payload.expires_at && payload.expires_at.getTime() <= Date.now()) {
            return yield* fail(400, "invalid_request", "expires_at must be in the future", { issues: [{ path: "expires_at", message: "must be in the future" }] })
          }
          const made = Tokens.newApiKey(principal.userId)
          const info = yield* call(users(principal.userId).CreateApiKey(
            new CreateApiKey({
              keyId: made.keyId,
              name: payload.name,
              scopes: payload.scopes,
              ...(payload.expires_at ? { expiresAt: payload.expires_at } : {}),
              ...(payload.spend_cap !== undefined ? { spendCap: payload.spend_cap } : {}),
              secretHash: made.hash
            })
          ))
          return { ...toApiKey(info), key: made.key }
        }))
      .handle("list", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          return { api_keys: (yield* call(users(principal.userId).ApiKeys())).map(toApiKey) }
        }))
      .handle("revoke", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          yield* call(users(principal.userId).RevokeApiKey(new RevokeApiKey({ keyId: path.id })))
          return noContent()
        }))
  }))

export const layer = Layer.mergeAll(me, apiKeys)
