/** Handlers of `/v1/credits`. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Credit } from "../../entities/credit/protocol.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import * as Policy from "../Policy.ts"
import { call } from "./common.ts"

export const layer = HttpApiBuilder.group(TroupeApi, "credits", (handlers) =>
  Effect.gen(function*() {
    const accounts = yield* Credit.client
    return handlers
      .handle("balance", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Profile)
          const balance = yield* call(accounts(principal.userId).Balance())
          return { available: balance.available, reserved: balance.reserved }
        }))
      .handle("ledger", ({ urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Profile)
          const page = yield* call(accounts(principal.userId).Ledger({ limit: urlParams.limit ?? 50, ...(urlParams.before !== undefined ? { before: urlParams.before } : {}) }))
          return {
            entries: page.entries.map((e) => ({
              id: e.id,
              key: e.key,
              kind: e.kind,
              bucket: e.bucket,
              amount: e.amount,
              reason: e.reason,
              skill: e.skill,
              api_key_id: e.apiKeyId,
              created_at: e.createdAt
            })),
            next_before: page.next
          }
        }))
  }))

