/** Handlers of `/v1/admin/*`: invites, users, credit grants. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Credit, Grant } from "../../entities/credit/protocol.ts"
import { User } from "../../entities/user/protocol.ts"
import { UserDirectory } from "../../entities/user/directory.ts"
import { Health } from "../../runtime/Health.ts"
import * as SqlClient from "@effect/sql/SqlClient"
import * as ClusterAdmin from "../../runtime/ClusterAdmin.ts"
import { TroupeConfig } from "../../runtime/Config.ts"
import * as Ids from "../../runtime/Ids.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { ApiFailure } from "../Errors.ts"
import * as FirstRun from "../FirstRun.ts"
import * as Policy from "../Policy.ts"
import pkg from "../../package.json" with { type: "json" }
import { call } from "./common.ts"

export const layer = HttpApiBuilder.group(TroupeApi, "admin", (handlers) =>
  Effect.gen(function*() {
    const accounts = yield* Credit.client
    const users = yield* User.client
    const directory = yield* UserDirectory
    const health = yield* Health
    const sql = yield* SqlClient.SqlClient
    const config = yield* TroupeConfig
    return handlers
      .handle("cluster", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const s = yield* ClusterAdmin.snapshot(config.cluster.shardsPerGroup).pipe(
            Effect.provideService(SqlClient.SqlClient, sql),
            Effect.mapError(() => new ApiFailure({ status: 503, code: "unavailable", message: "The cluster's state could not be read" }))
          )
          return {
            at: s.at,
            shards_per_group: s.shardsPerGroup,
            runners: s.runners.map((r) => ({
              address: r.address,
              healthy: r.healthy,
              drained: r.drained,
              last_heartbeat: r.lastHeartbeat,
              heartbeat_age_ms: r.heartbeatAgeMs,
              version: r.version,
              started_at: r.startedAt,
              shards: r.shards,
              entities: r.entities
            })),
            unassigned: s.unassigned
          }
        }))
      .handle("createInvite", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const code = FirstRun.newInviteCode()
          const inviteId = Ids.make("i", 16)
          const expiresAt = payload.expires_at ?? null
          yield* call(directory.createInvite({
            inviteId,
            codeHash: FirstRun.inviteDigest(code),
            kind: "standard",
            uses: payload.uses,
            expiresAt,
            giftCredits: payload.gift_credits ?? 0,
            createdBy: principal.userId
          }))
          return { id: inviteId, code, uses: payload.uses, used: 0, expires_at: expiresAt, gift_credits: payload.gift_credits ?? 0, created_at: new Date() }
        }))
      .handle("invites", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const invites = yield* call(directory.invites(200))
          return {
            invites: invites.map((i) => ({ id: i.inviteId, uses: i.uses, used: i.used, expires_at: i.expiresAt, gift_credits: i.giftCredits, created_at: i.createdAt }))
          }
        }))
      .handle("users", ({ urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const page = yield* call(directory.users({ limit: urlParams.limit ?? 50, before: urlParams.before }))
          return {
            users: page.users.map((u) => ({ id: u.userId, email: u.email, username: u.username, role: u.role, email_verified: u.emailVerified, created_at: u.createdAt })),
            next_before: page.next
          }
        }))
      .handle("grant", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          yield* call(users(payload.user_id).Profile())
          const key = `admin:${payload.idempotency_key ?? Ids.make("g", 16)}`
          const balance = yield* call(accounts(payload.user_id).Grant(new Grant({ key, amount: payload.amount, reason: payload.reason })))
          yield* Effect.logInfo("Admin granted credits").pipe(Effect.annotateLogs({ admin: principal.userId, user_id: payload.user_id, amount: payload.amount }))
          return { user_id: payload.user_id, available: balance.available, reserved: balance.reserved }
        }))
      .handle("health", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Admin)
          const report = yield* health.run({ detailed: true })
          return { status: report.status, version: pkg.version, uptime_seconds: Math.round(process.uptime()), failed: report.failed, checks: report.checks }
        }))
  }))

