/** Handlers of `/v1/api_keys`. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Credit } from "../../entities/credit/protocol.ts"
import { CreateApiKey, RevokeApiKey, User } from "../../entities/user/protocol.ts"
import type { ApiKeyInfo } from "../../entities/user/protocol.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { fail } from "../Errors.ts"
import * as Policy from "../Policy.ts"
import * as Tokens from "../Tokens.ts"
import { call, noContent } from "./common.ts"

const toApiKey = (k: ApiKeyInfo, spent: number | null = k.spendCap === null ? null : 0) => ({
  id: k.keyId,
  name: k.name,
  scopes: k.scopes,
  expires_at: k.expiresAt,
  spend_cap: k.spendCap,
  spent,
  created_at: k.createdAt
})

export const layer = HttpApiBuilder.group(TroupeApi, "api_keys", (handlers) =>
  Effect.gen(function*() {
    const users = yield* User.client
    const accounts = yield* Credit.client
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
          const keys = yield* call(users(principal.userId).ApiKeys())
          // what each capped key has used against its cap: charged plus held now, under its spend scope
          const scopes = keys.filter((k) => k.spendCap !== null).map((k) => Policy.apiKeySpendScopeId(k.keyId)).slice(0, 200)
          const usage = scopes.length === 0 ? {} : yield* call(accounts(principal.userId).ScopeUsage({ scopes }))
          return { api_keys: keys.map((k) => toApiKey(k, k.spendCap === null ? null : usage[Policy.apiKeySpendScopeId(k.keyId)] ?? 0)) }
        }))
      .handle("revoke", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          yield* call(users(principal.userId).RevokeApiKey(new RevokeApiKey({ keyId: path.id })))
          return noContent()
        }))
  }))

