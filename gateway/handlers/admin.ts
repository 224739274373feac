/** Handlers of `/v1/admin/*`: invites, users, credit grants. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Credit, Grant } from "../../entities/credit/protocol.ts"
import { User } from "../../entities/user/protocol.ts"
import * as UserRepo from "../../entities/user/repo.ts"
import * as Secrets from "../../entities/user/secrets.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import * as FirstRun from "../FirstRun.ts"
import * as Policy from "../Policy.ts"
import { call } from "./common.ts"

const sqlFailure = { _tag: "PersistenceError" as const }

export const layer = HttpApiBuilder.group(TroupeApi, "admin", (handlers) =>
  Effect.gen(function*() {
    const accounts = yield* Credit.client
    const users = yield* User.client
    return handlers
      .handle("createInvite", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const code = FirstRun.newInviteCode()
          const inviteId = Secrets.randomId("i", 16)
          const expiresAt = payload.expires_at ?? null
          yield* call(UserRepo.createInvite({
            inviteId,
            codeHash: FirstRun.inviteDigest(code),
            kind: "standard",
            uses: payload.uses,
            expiresAt,
            giftCredits: payload.gift_credits ?? 0,
            createdBy: principal.userId
          }).pipe(Effect.mapError(() => sqlFailure)))
          return { id: inviteId, code, uses: payload.uses, used: 0, expires_at: expiresAt, gift_credits: payload.gift_credits ?? 0, created_at: new Date() }
        }))
      .handle("invites", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const rows = yield* call(UserRepo.listInvites(200).pipe(Effect.mapError(() => sqlFailure)))
          return {
            invites: rows.map((r) => ({
              id: r.invite_id,
              uses: r.uses,
              used: r.used,
              expires_at: r.expires_at ? new Date(r.expires_at) : null,
              gift_credits: Number(r.gift_credits),
              created_at: new Date(r.created_at)
            }))
          }
        }))
      .handle("users", ({ urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const limit = urlParams.limit ?? 50
          const rows = yield* call(UserRepo.listUsers({ limit, ...(urlParams.before !== undefined ? { before: new Date(urlParams.before) } : {}) }).pipe(Effect.mapError(() => sqlFailure)))
          const page = rows.slice(0, limit)
          return {
            users: page.map((u) => ({
              id: u.user_id,
              email: u.email,
              username: u.username,
              role: u.role,
              email_verified: u.email_verified_at !== null,
              created_at: new Date(u.created_at)
            })),
            next_before: rows.length > limit ? new Date(page[page.length - 1]!.created_at).getTime() : null
          }
        }))
      .handle("grant", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          yield* call(users(payload.user_id).Profile())
          const key = `admin:${payload.idempotency_key ?? Secrets.randomId("g", 16)}`
          const balance = yield* call(accounts(payload.user_id).Grant(new Grant({ key, amount: payload.amount, reason: payload.reason })))
          yield* Effect.logInfo("Admin granted credits").pipe(Effect.annotateLogs({ admin: principal.userId, user_id: payload.user_id, amount: payload.amount }))
          return { user_id: payload.user_id, available: balance.available, reserved: balance.reserved }
        }))
  }))

