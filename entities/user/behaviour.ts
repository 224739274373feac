/**
 * The User entity's behaviour. Messages run one at a time per user; the account row and API
 * keys are kept in memory for fast volatile reads (`Profile`, `VerifyApiKey`) and reloaded after
 * every write. Every persisted command is idempotent on its own (a replay after a crash finds
 * its work done), and cross-entity effects carry idempotency keys (`signup:<userId>` grants,
 * `Chat.Delete` on account deletion).
 */
import * as Entity from "@effect/cluster/Entity"
import * as Singleton from "@effect/cluster/Singleton"
import type * as Sharding from "@effect/cluster/Sharding"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as OTPAuth from "otpauth"
import { deleteProcessedFor, retryTransient } from "../../runtime/Cluster.ts"
import { isUniqueViolation } from "../../runtime/Database.ts"
import { instrument } from "../../runtime/EntityMetrics.ts"
import { KeyRing } from "../../runtime/KeyRing.ts"
import { Chat, Delete } from "../chat/protocol.ts"
import { Credit, Grant } from "../credit/protocol.ts"
import * as Passkeys from "./passkeys.ts"
import * as Passwords from "./passwords.ts"
import {
  ApiKeyGrant,
  ApiKeyInfo,
  ApiKeyInvalid,
  ApiKeyNotFound,
  Authenticated,
  ChatPage,
  ChatRef,
  DefaultMate,
  EmailChanged,
  IdentityTaken,
  defaultMateId,
  EmailNotVerified,
  InvalidCode,
  InvalidCredentials,
  InvalidRefreshToken,
  InvalidTotp,
  InviteInvalid,
  LimitReached,
  Mate,
  MateNotFound,
  PasskeyExists,
  PasskeyNotFound,
  PasskeyRefused,
  Profile,
  Register,
  Registered,
  ResetTokenInvalid,
  SessionInfo,
  TotpRequired,
  TotpSetup,
  TotpState,
  User,
  UserExists,
  UserNotFound
} from "./protocol.ts"
import * as Repo from "./repo.ts"
import * as Secrets from "./secrets.ts"

/**
 * The default mate every account starts with. It may use the first-party apps (calculate,
 * summarize and shorten text, read a pasted link): read-only skills, so a new account's mate can
 * do something useful, and the `/math.calculate {…}` the server suggests without a model works.
 */
export const defaultMate = {
  mateId: defaultMateId,
  name: "Troupe",
  systemPrompt: "You are a helpful team-mate.",
  model: "default",
  allowedSkills: ["math", "text", "web"] as ReadonlyArray<string>,
  isDefault: true
}

/** Limits per account. */
export const limits = { mates: 50, apiKeys: 50, passkeys: 20, emailCodeAttempts: 5, refreshTokenDays: 30 }

const toProfile = (u: Repo.UserRow) =>
  new Profile({
    userId: u.user_id,
    email: u.email,
    username: u.username,
    displayName: u.display_name,
    role: u.role,
    emailVerified: u.email_verified_at !== null,
    totpEnabled: u.totp_secret !== null,
    settings: Repo.json(u.settings),
    createdAt: new Date(u.created_at)
  })

const toMate = (m: Repo.MateRow, systemPrompt: string) =>
  new Mate({
    mateId: m.mate_id,
    name: m.name,
    systemPrompt,
    model: m.model,
    allowedSkills: Repo.json(m.allowed_skills),
    isDefault: m.is_default,
    createdAt: new Date(m.created_at),
    updatedAt: new Date(m.updated_at)
  })

const toApiKey = (k: Repo.ApiKeyRow) =>
  new ApiKeyInfo({
    keyId: k.key_id,
    name: k.name,
    scopes: Repo.json(k.scopes),
    expiresAt: k.expires_at ? new Date(k.expires_at) : null,
    spendCap: k.spend_cap === null ? null : Number(k.spend_cap),
    createdAt: new Date(k.created_at)
  })

const totpOf = (secret: string, label: string, issuer: string) =>
  new OTPAuth.TOTP({ issuer, label, algorithm: "SHA1", digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret) })

/** The TOTP time step a code matches (within one step of drift), or undefined. */
const matchTotp = (secret: string, code: string): number | undefined => {
  if (!/^\d{6}$/.test(code)) return undefined
  const delta = totpOf(secret, "x", "x").validate({ token: code, window: 1 })
  return delta === null ? undefined : Math.floor(Date.now() / 30_000) + delta
}

const die = <A, E, R>(effect: Effect.Effect<A, E | SqlError, R>) =>
  Effect.catchIf(effect, (e): e is SqlError => typeof e === "object" && e !== null && (e as { _tag?: string })._tag === "SqlError", Effect.die) as Effect.Effect<
    A,
    Exclude<E, SqlError>,
    R
  >

/** Host User entities. */
export const layer: Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient | KeyRing> = User.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const userId = address.entityId
    const repo = yield* Repo.make(userId)
    const { sql } = repo
    const keyRing = yield* KeyRing
    const credits = yield* Credit.client
    const chats = yield* Chat.client
    const dataKeyId = `user:${userId}`
    const totpAad = (kind: string) => `user:${userId}:${kind}`

    /** A mate's prompt is sealed with the user's data key, bound to the mate. */
    const promptAad = (mateId: string) => `user:${userId}:mate:${mateId}:prompt`
    const sealPrompt = (mateId: string, prompt: string) => keyRing.encryptText(dataKeyId, prompt, promptAad(mateId)).pipe(Effect.orDie)
    const mateOf = (m: Repo.MateRow) =>
      Effect.map(
        m.system_prompt_sealed ? keyRing.decryptText(Repo.bytes(m.system_prompt_sealed), promptAad(m.mate_id)).pipe(Effect.orDie) : Effect.succeed(m.system_prompt),
        (prompt) => toMate(m, prompt)
      )
    const mateById = (mateId: string) => Effect.flatMap(repo.mates, (rows) => mateOf(rows.find((m) => m.mate_id === mateId)!))

    let row = yield* Effect.orDie(repo.user)
    let keys = new Map<string, Repo.ApiKeyRow>()
    const reloadKeys = Effect.map(repo.apiKeys, (rows) => {
      keys = new Map(rows.map((k) => [k.key_id, k]))
    })
    if (row && !row.deleted_at) yield* Effect.orDie(reloadKeys)
    // prompts written before they were sealed: sealed now (layerPromptSealer wakes every user that has some)
    if (row && !row.deleted_at) {
      const plaintext = yield* Effect.orDie(repo.plaintextPrompts)
      if (plaintext.length > 0) {
        yield* keyRing.createDataKey(dataKeyId).pipe(Effect.orDie)
        yield* Effect.forEach(plaintext, (m) => Effect.flatMap(sealPrompt(m.mate_id, m.system_prompt), (sealed) => repo.sealPrompt(m.mate_id, m.system_prompt, sealed)), { discard: true }).pipe(Effect.orDie)
        yield* Effect.logInfo("Sealed mates' system prompts").pipe(Effect.annotateLogs({ user_id: userId, mates: plaintext.length }))
      }
    }

    const reload = Effect.map(repo.user, (u) => {
      row = u
    })
    const live = Effect.suspend(() => (row && !row.deleted_at ? Effect.succeed(row) : Effect.fail(new UserNotFound({ userId }))))

    /** Check an assertion with one of this user's passkeys and move its counter forward. */
    const usePasskey = (passkey: { readonly assertion: Passkeys.AssertionOf; readonly expected: Passkeys.Expected }) =>
      Effect.gen(function*() {
        const stored = (yield* repo.passkeys).find((p) => p.credential_id === passkey.assertion.id)
        if (!stored) return yield* new PasskeyRefused({ reason: "unknown_credential" })
        const counter = yield* Passkeys.verify(stored, passkey.assertion, passkey.expected)
        yield* repo.usePasskey(stored.credential_id, counter)
      })

    const register = (payload: Register) =>
      Effect.gen(function*() {
        if (!row) {
          yield* keyRing.createDataKey(dataKeyId).pipe(Effect.orDie)
          const defaultPrompt = yield* sealPrompt(defaultMate.mateId, defaultMate.systemPrompt)
          yield* sql.withTransaction(
            Effect.gen(function*() {
              const clash = yield* repo.taken(payload.email, payload.username)
              if (clash) return yield* new UserExists({ field: clash })
              let role: "user" | "admin" = "user"
              let verified = false
              if (payload.inviteCodeHash) {
                const invite = yield* repo.inviteByHash(payload.inviteCodeHash)
                if (!invite) return yield* new InviteInvalid({ reason: "unknown" })
                if (invite.expires_at && new Date(invite.expires_at).getTime() <= Date.now()) return yield* new InviteInvalid({ reason: "expired" })
                if (!(yield* repo.redeem(invite.invite_id))) return yield* new InviteInvalid({ reason: "used_up" })
                if (invite.kind === "initial_admin") {
                  role = "admin"
                  verified = payload.initialInviteVerifiesEmail === true
                }
              }
              if (payload.emailVerifiedBySso === true) verified = true
              yield* repo.insertUser({
                email: payload.email,
                username: payload.username,
                passwordHash: payload.passwordHash,
                role,
                emailCodeHash: payload.emailCodeHash,
                emailCodeExpiresAt: payload.emailCodeExpiresAt
              }).pipe(
                Effect.catchIf(isUniqueViolation, () =>
                  Effect.flatMap(repo.taken(payload.email, payload.username), (field) => new UserExists({ field: field ?? "email" })))
              )
              if (verified) yield* repo.markEmailVerified
              yield* repo.upsertMate({ ...defaultMate, sealedPrompt: defaultPrompt })
            })
          )
          yield* reload
          yield* Effect.logInfo("User registered").pipe(Effect.annotateLogs({ user_id: userId, role: row!.role }))
        }
        const u = yield* Effect.orDie(live)
        yield* keyRing.createDataKey(dataKeyId).pipe(Effect.orDie)
        const redemption = yield* repo.redemption
        const account = credits(userId)
        let balance = yield* retryTransient(account.Balance()).pipe(Effect.orDie)
        if (payload.startingCredits > 0) {
          balance = yield* retryTransient(account.Grant(new Grant({ key: `signup:${userId}`, amount: payload.startingCredits, reason: "signup" }))).pipe(Effect.orDie)
        }
        const gift = redemption ? Number(redemption.gift_credits) : 0
        if (redemption && gift > 0) {
          balance = yield* retryTransient(account.Grant(new Grant({ key: `invite:${redemption.invite_id}:${userId}`, amount: gift, reason: "invite" }))).pipe(Effect.orDie)
        }
        return new Registered({ profile: toProfile(u), inviteKind: redemption?.kind ?? null, credits: balance.available })
      })

    return instrument("User", User.of({
      Register: ({ payload }) => die(register(payload)),

      SetEmailCode: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          yield* repo.update({ email_code_hash: payload.codeHash, email_code_expires_at: payload.expiresAt, email_code_attempts: 0 })
          yield* reload
        })),

      SetResetToken: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          yield* repo.insertResetToken(payload.tokenHash, payload.expiresAt)
        })),

      ResetPassword: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = row && !row.deleted_at ? row : undefined
          if (!u) return yield* new ResetTokenInvalid({ reason: "unknown" })
          const token = yield* repo.resetToken(payload.tokenHash)
          if (!token) return yield* new ResetTokenInvalid({ reason: "unknown" })
          if (token.used_at) return yield* new ResetTokenInvalid({ reason: "used" })
          if (new Date(token.expires_at).getTime() <= Date.now()) return yield* new ResetTokenInvalid({ reason: "expired" })
          const revoked = yield* sql.withTransaction(
            Effect.gen(function*() {
              if (!(yield* repo.useResetToken(payload.tokenHash))) return yield* new ResetTokenInvalid({ reason: "used" })
              yield* repo.update({ password_hash: payload.passwordHash })
              // the link came by mail: the address is proven
              if (!u.email_verified_at) yield* repo.markEmailVerified
              yield* sql`DELETE FROM user_refresh_tokens WHERE user_id = ${userId}`
              return yield* repo.revokeAllSessions("password_reset")
            })
          )
          yield* reload
          yield* Effect.logInfo("Password reset").pipe(Effect.annotateLogs({ user_id: userId, revoked_sessions: revoked.length }))
          return revoked
        })),

      BeginEmailChange: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = yield* live
          if (!(yield* Passwords.verify(u.password_hash, payload.password))) return yield* new InvalidCredentials()
          const clash = yield* repo.taken(payload.email, u.username)
          if (clash === "email") return yield* new UserExists({ field: "email" })
          yield* repo.update({
            pending_email: payload.email,
            pending_email_code_hash: payload.codeHash,
            pending_email_expires_at: payload.expiresAt,
            pending_email_attempts: 0
          })
          yield* reload
        })),

      ConfirmEmailChange: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = yield* live
          if (!u.pending_email || !u.pending_email_code_hash || !u.pending_email_expires_at) return yield* new InvalidCode({ reason: "none" })
          if (u.pending_email_attempts >= limits.emailCodeAttempts) return yield* new InvalidCode({ reason: "too_many_attempts" })
          if (new Date(u.pending_email_expires_at).getTime() <= Date.now()) return yield* new InvalidCode({ reason: "expired" })
          if (!Secrets.sameDigest(Secrets.emailChangeCodeDigest(userId, u.pending_email, payload.code), u.pending_email_code_hash)) {
            yield* sql`UPDATE users SET pending_email_attempts = pending_email_attempts + 1 WHERE user_id = ${userId}`
            yield* reload
            return yield* new InvalidCode({ reason: "wrong" })
          }
          const previousEmail = u.email
          yield* sql`UPDATE users SET email = ${u.pending_email}, email_verified_at = now(), pending_email = NULL,
                     pending_email_code_hash = NULL, pending_email_expires_at = NULL, pending_email_attempts = 0 WHERE user_id = ${userId}`.pipe(
            Effect.catchIf(isUniqueViolation, () => new UserExists({ field: "email" }))
          )
          yield* reload
          yield* Effect.logInfo("E-mail address changed").pipe(Effect.annotateLogs({ user_id: userId }))
          return new EmailChanged({ profile: toProfile(yield* live), previousEmail })
        })),

      UpdateProfile: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          const fields: Record<string, unknown> = {}
          if (payload.displayName !== undefined) fields.display_name = payload.displayName
          if (payload.settings !== undefined) fields.settings = JSON.stringify(payload.settings)
          if (Object.keys(fields).length > 0) {
            if (payload.settings !== undefined) {
              yield* sql`UPDATE users SET settings = ${JSON.stringify(payload.settings)}::jsonb WHERE user_id = ${userId}`
              delete fields.settings
            }
            if (Object.keys(fields).length > 0) yield* repo.update(fields)
            yield* reload
          }
          return toProfile(yield* live)
        })),

      CreateMate: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          const mates = yield* repo.mates
          const existing = mates.find((m) => m.mate_id === payload.mateId)
          if (existing) return yield* mateOf(existing)
          if (mates.length >= limits.mates) return yield* new LimitReached({ what: "mates", limit: limits.mates })
          yield* keyRing.createDataKey(dataKeyId).pipe(Effect.orDie)
          const { systemPrompt, ...mate } = payload
          yield* repo.upsertMate({ ...mate, sealedPrompt: yield* sealPrompt(payload.mateId, systemPrompt), isDefault: false })
          return yield* mateById(payload.mateId)
        })),

      UpdateMate: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          const current = (yield* repo.mates).find((m) => m.mate_id === payload.mateId)
          if (!current) return yield* new MateNotFound({ mateId: payload.mateId })
          const prompt = payload.systemPrompt ?? (yield* mateOf(current)).systemPrompt
          yield* keyRing.createDataKey(dataKeyId).pipe(Effect.orDie)
          yield* repo.upsertMate({
            mateId: current.mate_id,
            name: payload.name ?? current.name,
            sealedPrompt: yield* sealPrompt(current.mate_id, prompt),
            model: payload.model ?? current.model,
            allowedSkills: payload.allowedSkills ?? Repo.json(current.allowed_skills),
            isDefault: current.is_default
          })
          return yield* mateById(payload.mateId)
        })),

      DeleteMate: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          const current = (yield* repo.mates).find((m) => m.mate_id === payload.mateId)
          if (!current) {
            const gone = yield* sql`SELECT 1 FROM user_mates WHERE user_id = ${userId} AND mate_id = ${payload.mateId}`
            if (gone.length > 0) return // deleted already (a replay)
            return yield* new MateNotFound({ mateId: payload.mateId })
          }
          if (current.is_default) return yield* new DefaultMate()
          yield* repo.deleteMate(payload.mateId)
        })),

      CreateApiKey: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          const existing = keys.get(payload.keyId)
          if (existing) return toApiKey(existing)
          const active = [...keys.values()].filter((k) => !k.revoked_at).length
          if (active >= limits.apiKeys) return yield* new LimitReached({ what: "api_keys", limit: limits.apiKeys })
          yield* repo.insertApiKey({
            keyId: payload.keyId,
            name: payload.name,
            secretHash: payload.secretHash,
            scopes: [...new Set(payload.scopes)],
            expiresAt: payload.expiresAt ?? null,
            spendCap: payload.spendCap ?? null
          })
          yield* reloadKeys
          return toApiKey(keys.get(payload.keyId)!)
        })),

      RevokeApiKey: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          if (!keys.has(payload.keyId)) return yield* new ApiKeyNotFound({ keyId: payload.keyId })
          yield* repo.revokeApiKey(payload.keyId)
          yield* reloadKeys
        })),

      RevokeSession: ({ payload }) => Effect.orDie(repo.revokeSession(payload.familyId, "logout")),

      RevokeAllSessions: () => Effect.orDie(repo.revokeAllSessions("logout_all")),

      AddChat: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          yield* repo.addChat({ chatId: payload.chatId, mateId: payload.mateId })
        })),

      RemoveChat: ({ payload }) => Effect.orDie(repo.removeChat(payload.chatId)),

      DeleteAccount: () =>
        die(Effect.gen(function*() {
          if (!row) return [] as ReadonlyArray<string>
          const chatIds = yield* repo.allChatIds
          yield* Effect.forEach(
            chatIds,
            (chatId) =>
              retryTransient(chats(chatId).Delete(new Delete({ byUserId: userId }))).pipe(
                Effect.catchAllCause((cause) => Effect.logWarning("Could not delete a chat of a deleted account", cause).pipe(Effect.annotateLogs({ chat_id: chatId })))
              ),
            { concurrency: 4, discard: true }
          )
          yield* Effect.forEach(chatIds, (chatId) => repo.removeChat(chatId), { discard: true })
          const revoked = yield* repo.revokeAllSessions("account_deleted")
          yield* repo.wipe
          // the account's earlier commands (registration, profile, mates) are in the cluster's tables too
          yield* deleteProcessedFor("User", userId)
          yield* keyRing.destroyDataKey(dataKeyId)
          yield* reload
          yield* reloadKeys
          yield* Effect.logInfo("Account deleted").pipe(Effect.annotateLogs({ user_id: userId, chats: chatIds.length }))
          return revoked
        })),

      Profile: () => Effect.map(live, toProfile),

      VerifyEmail: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = yield* live
          if (u.email_verified_at) return toProfile(u)
          if (!u.email_code_hash || !u.email_code_expires_at) return yield* new InvalidCode({ reason: "none" })
          if (u.email_code_attempts >= limits.emailCodeAttempts) return yield* new InvalidCode({ reason: "too_many_attempts" })
          if (new Date(u.email_code_expires_at).getTime() <= Date.now()) return yield* new InvalidCode({ reason: "expired" })
          if (!Secrets.sameDigest(Secrets.emailCodeDigest(userId, payload.code), u.email_code_hash)) {
            yield* sql`UPDATE users SET email_code_attempts = email_code_attempts + 1 WHERE user_id = ${userId}`
            yield* reload
            return yield* new InvalidCode({ reason: "wrong" })
          }
          yield* repo.markEmailVerified
          yield* reload
          return toProfile(yield* live)
        })),

      Login: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = row && !row.deleted_at ? row : undefined
          if (!u) return yield* new InvalidCredentials()
          const ok = yield* Passwords.verify(u.password_hash, payload.password)
          if (!ok) return yield* new InvalidCredentials()
          // a lockout from other addresses lets through only what a guesser of the password cannot have
          if (payload.secondFactorRequired && !u.totp_secret && !payload.passkey) return yield* new InvalidCredentials()
          if (!u.email_verified_at) return yield* new EmailNotVerified()
          if (payload.passkey && (u.totp_secret || payload.secondFactorRequired)) {
            // a passkey of this account is the second factor
            yield* usePasskey(payload.passkey)
          } else if (u.totp_secret) {
            const code = payload.totpCode?.trim()
            if (!code) return yield* new TotpRequired()
            if (/^\d{6}$/.test(code)) {
              const secret = yield* keyRing.decryptText(Repo.bytes(u.totp_secret), totpAad("totp")).pipe(Effect.orDie)
              const step = matchTotp(secret, code)
              // a code is good once: replaying the last step's code is refused
              if (step === undefined || step <= Number(u.totp_last_step)) return yield* new InvalidTotp()
              yield* repo.update({ totp_last_step: step })
              yield* reload
            } else if (!(yield* repo.useBackupCode(Secrets.backupCodeDigest(userId, code)))) {
              return yield* new InvalidTotp()
            }
          }
          yield* repo.insertSession(payload.session)
          return new Authenticated({ userId, role: u.role, familyId: payload.session.familyId })
        })),

      PasskeyLogin: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = row && !row.deleted_at ? row : undefined
          if (!u) return yield* new PasskeyRefused({ reason: "unknown_credential" })
          yield* usePasskey(payload)
          if (!u.email_verified_at) return yield* new EmailNotVerified()
          yield* repo.insertSession(payload.session)
          return new Authenticated({ userId, role: u.role, familyId: payload.session.familyId })
        })),

      SsoLogin: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = yield* live
          if (!(yield* repo.linkIdentity(payload.provider, payload.subject, payload.email))) return yield* new IdentityTaken()
          const fields: Record<string, unknown> = {}
          if (payload.role && payload.role !== u.role) fields.role = payload.role
          if (Object.keys(fields).length > 0) yield* repo.update(fields)
          if (payload.emailVerified && !u.email_verified_at && u.email.toLowerCase() === payload.email.toLowerCase()) yield* repo.markEmailVerified
          yield* repo.insertSession(payload.session)
          yield* reload
          return new Authenticated({ userId, role: row!.role, familyId: payload.session.familyId })
        })),

      Passkeys: () => Effect.map(Effect.orDie(repo.passkeys), (rows) => rows.map(Passkeys.toInfo)),

      AddPasskey: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          const mine = yield* repo.passkeys
          const existing = mine.find((p) => p.credential_id === payload.credentialId)
          if (existing) return Passkeys.toInfo(existing)
          if (mine.length >= limits.passkeys) return yield* new LimitReached({ what: "passkeys", limit: limits.passkeys })
          const added = yield* repo.insertPasskey({
            credentialId: payload.credentialId,
            publicKey: new Uint8Array(Buffer.from(payload.publicKey, "base64url")),
            counter: payload.counter,
            transports: payload.transports,
            name: payload.name,
            deviceType: payload.deviceType,
            backedUp: payload.backedUp
          })
          if (!added) return yield* new PasskeyExists()
          yield* Effect.logInfo("Passkey registered").pipe(Effect.annotateLogs({ user_id: userId }))
          return Passkeys.toInfo((yield* repo.passkeys).find((p) => p.credential_id === payload.credentialId)!)
        })),

      RemovePasskey: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          if (!(yield* repo.deletePasskey(payload.credentialId))) return yield* new PasskeyNotFound()
        })),

      Refresh: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = row && !row.deleted_at ? row : undefined
          if (!u) return yield* new InvalidRefreshToken({ reuse: false })
          const token = yield* repo.refreshToken(payload.tokenHash)
          if (!token || token.family_id !== payload.familyId) return yield* new InvalidRefreshToken({ reuse: false })
          const session = yield* repo.session(payload.familyId)
          if (!session || session.revoked_at) return yield* new InvalidRefreshToken({ reuse: false })
          const rotated = token.used_at === null && (yield* repo.rotate(payload.familyId, payload.tokenHash, payload.nextTokenHash))
          if (!rotated) {
            yield* repo.revokeSession(payload.familyId, "refresh_token_reuse")
            yield* Effect.logWarning("Refresh token reused: session revoked").pipe(Effect.annotateLogs({ user_id: userId, family_id: payload.familyId }))
            return yield* new InvalidRefreshToken({ reuse: true })
          }
          const ageDays = (Date.now() - new Date(session.created_at).getTime()) / 86_400_000
          if (ageDays > limits.refreshTokenDays) {
            yield* repo.revokeSession(payload.familyId, "expired")
            return yield* new InvalidRefreshToken({ reuse: false })
          }
          return new Authenticated({ userId, role: u.role, familyId: payload.familyId })
        })),

      SessionActive: ({ payload }) =>
        Effect.map(Effect.orDie(repo.session(payload.familyId)), (s) => s !== undefined && s.revoked_at === null && row?.deleted_at === null),

      Sessions: () =>
        Effect.map(Effect.orDie(repo.sessions), (rows) =>
          rows.map((s) =>
            new SessionInfo({ familyId: s.family_id, createdAt: new Date(s.created_at), lastUsedAt: new Date(s.last_used_at), userAgent: s.user_agent, ip: s.ip })
          )),

      BeginTotp: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = yield* live
          if (u.totp_secret) return yield* new TotpState({ reason: "already_enabled" })
          const secret = new OTPAuth.Secret({ size: 20 }).base32
          yield* keyRing.createDataKey(dataKeyId).pipe(Effect.orDie)
          const sealed = yield* keyRing.encryptText(dataKeyId, secret, totpAad("totp")).pipe(Effect.orDie)
          yield* repo.update({ totp_pending: sealed })
          yield* reload
          return new TotpSetup({ secret, uri: totpOf(secret, u.email, payload.issuer).toString() })
        })),

      ConfirmTotp: ({ payload }) =>
        die(Effect.gen(function*() {
          const u = yield* live
          if (u.totp_secret) return yield* new TotpState({ reason: "already_enabled" })
          if (!u.totp_pending) return yield* new TotpState({ reason: "not_started" })
          const pending = Repo.bytes(u.totp_pending)
          const secret = yield* keyRing.decryptText(pending, totpAad("totp")).pipe(Effect.orDie)
          const step = matchTotp(secret, payload.code.trim())
          if (step === undefined) return yield* new InvalidTotp()
          const codes = Array.from({ length: 10 }, Secrets.backupCode)
          yield* sql.withTransaction(
            Effect.gen(function*() {
              yield* repo.update({ totp_secret: pending, totp_pending: null, totp_last_step: step })
              yield* repo.replaceBackupCodes(codes.map((c) => Secrets.backupCodeDigest(userId, c)))
            })
          )
          yield* reload
          yield* Effect.logInfo("Two-factor authentication enabled").pipe(Effect.annotateLogs({ user_id: userId }))
          return codes
        })),

      VerifyApiKey: ({ payload }) =>
        Effect.suspend(() => {
          const k = keys.get(payload.keyId)
          if (!k || !row || row.deleted_at || !Secrets.sameDigest(k.secret_hash, payload.secretHash)) {
            return Effect.fail(new ApiKeyInvalid({ reason: "unknown" }))
          }
          if (k.revoked_at) return Effect.fail(new ApiKeyInvalid({ reason: "revoked" }))
          if (k.expires_at && new Date(k.expires_at).getTime() <= Date.now()) return Effect.fail(new ApiKeyInvalid({ reason: "expired" }))
          return Effect.succeed(
            new ApiKeyGrant({
              userId,
              role: row.role,
              keyId: k.key_id,
              scopes: Repo.json(k.scopes),
              spendCap: k.spend_cap === null ? null : Number(k.spend_cap),
              expiresAt: k.expires_at ? new Date(k.expires_at) : null
            })
          )
        }),

      ApiKeys: () => Effect.sync(() => [...keys.values()].filter((k) => !k.revoked_at).map(toApiKey)),

      Mates: () => die(Effect.flatMap(live, () => Effect.flatMap(repo.mates, (rows) => Effect.forEach(rows, mateOf)))),

      GetMate: ({ payload }) =>
        die(Effect.gen(function*() {
          yield* live
          const m = (yield* repo.mates).find((m) => m.mate_id === payload.mateId)
          if (!m) return yield* new MateNotFound({ mateId: payload.mateId })
          return yield* mateOf(m)
        })),

      Chats: ({ payload }) =>
        Effect.map(Effect.orDie(repo.chats(payload.before, payload.limit)), (rows) => {
          const page = rows.slice(0, payload.limit)
          return new ChatPage({
            chats: page.map((c) => new ChatRef({ chatId: c.chat_id, mateId: c.mate_id, title: c.title, createdAt: new Date(c.created_at) })),
            before: rows.length > payload.limit ? Number(page[page.length - 1]!.seq) : null
          })
        }),

      HasChat: ({ payload }) => Effect.orDie(repo.hasChat(payload.chatId))
    }))
  }),
  { maxIdleTime: "10 minutes", concurrency: 1 }
)

/**
 * Seal the mates' system prompts written before they were encrypted: wakes every user that still
 * has some (the User entity seals them when it starts), at start and every 10 minutes until none
 * are left. A cluster singleton.
 */
export const layerPromptSealer: Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient> = Singleton.make(
  "troupe-user-prompt-sealer",
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const users = yield* User.client
    const pending = yield* sql<{ user_id: string }>`
      SELECT DISTINCT m.user_id FROM user_mates m JOIN users u ON u.user_id = m.user_id
      WHERE m.system_prompt <> '' AND u.deleted_at IS NULL LIMIT 500`
    yield* Effect.forEach(pending, (r) => retryTransient(users(r.user_id).Profile()).pipe(Effect.ignore), { concurrency: 4, discard: true })
  }).pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("Sealing mates' prompts failed", cause)),
    Effect.repeat(Schedule.spaced("10 minutes")),
    Effect.asVoid
  )
)
