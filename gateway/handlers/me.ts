/** Handlers of `/v1/me`. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { AddPasskey, DeleteAccount, RemovePasskey, UpdateProfile, User } from "../../entities/user/protocol.ts"
import type { PasskeyInfo } from "../../entities/user/protocol.ts"
import * as Secrets from "../../entities/user/secrets.ts"
import * as Ids from "../../runtime/Ids.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { GatewayConfig } from "../Config.ts"
import { Mailer } from "../Mailer.ts"
import * as Policy from "../Policy.ts"
import { RateLimiter } from "../RateLimit.ts"
import * as Tokens from "../Tokens.ts"
import * as WebAuthn from "../WebAuthn.ts"
import { Uploads } from "../../uploads/Uploads.ts"
import { call, noContent, toMe, withoutSessionCookies } from "./common.ts"

export const layer = HttpApiBuilder.group(TroupeApi, "me", (handlers) =>
  Effect.gen(function*() {
    const users = yield* User.client
    const tokens = yield* Tokens.Tokens
    const config = yield* GatewayConfig
    const uploads = yield* Effect.serviceOption(Uploads)
    const mailer = yield* Mailer
    const limiter = yield* RateLimiter
    const webauthn = yield* WebAuthn.make
    const toPasskey = (p: PasskeyInfo) => ({
      id: p.credentialId,
      name: p.name,
      device_type: p.deviceType,
      backed_up: p.backedUp,
      transports: p.transports,
      created_at: p.createdAt,
      last_used_at: p.lastUsedAt
    })
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
      .handle("changeEmail", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          yield* limiter.consume("mail", `email-change:${payload.email.toLowerCase()}`)
          const code = Secrets.emailCode()
          yield* call(users(principal.userId).BeginEmailChange({
            email: payload.email,
            password: payload.password,
            codeHash: Secrets.emailChangeCodeDigest(principal.userId, payload.email, code),
            expiresAt: new Date(Date.now() + 30 * 60_000)
          }))
          yield* mailer.send({
            to: payload.email,
            subject: `Confirm your new Troupe e-mail address: ${code}`,
            text: `Your verification code is ${code}.\n\nEnter it in Troupe to make this your account's e-mail address. It expires in 30 minutes. If you did not ask for this, ignore this mail.\n`
          }).pipe(Effect.catchAll((e) => Effect.logError("Could not send the e-mail change code", e.message)))
          return { pending_email: payload.email, confirmation: "sent" as const }
        }))
      .handle("confirmEmail", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const changed = yield* call(users(principal.userId).ConfirmEmailChange({ code: payload.code }))
          yield* mailer.send({
            to: changed.previousEmail,
            subject: "Your Troupe e-mail address was changed",
            text: `The e-mail address of your Troupe account (${changed.profile.username}) was changed from ${changed.previousEmail} to ${changed.profile.email}.\n\nIf you did not do this, reset your password and tell your Troupe administrator.\n`
          }).pipe(Effect.catchAll((e) => Effect.logError("Could not tell the old address of an e-mail change", e.message)))
          return toMe(changed.profile)
        }))
      .handle("passkeys", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          return { passkeys: (yield* call(users(principal.userId).Passkeys())).map(toPasskey) }
        }))
      .handle("passkeyRegistrationOptions", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const profile = yield* call(users(principal.userId).Profile())
          const existing = yield* call(users(principal.userId).Passkeys())
          const { challengeId, options } = yield* webauthn.registrationOptions({ userId: profile.userId, username: profile.username, displayName: profile.displayName }, existing)
          return { challenge_id: challengeId, options }
        }))
      .handle("addPasskey", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const verified = yield* webauthn.verifyRegistration(principal.userId, payload.challenge_id, payload.response)
          const added = yield* call(users(principal.userId).AddPasskey(new AddPasskey({ ...verified, name: payload.name?.trim() || "Passkey" })))
          return toPasskey(added)
        }))
      .handle("removePasskey", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          yield* call(users(principal.userId).RemovePasskey(new RemovePasskey({ key: Ids.make("r", 16), credentialId: path.id })))
          return noContent()
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

