/** Handlers of `/v1/auth/*`: signup, email verification, login with 2FA, refresh, logout. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { Register, RevokeAllSessions, RevokeSession, SetEmailCode, SetResetToken, User } from "../../entities/user/protocol.ts"
import { UserDirectory } from "../../entities/user/directory.ts"
import * as Passwords from "../../entities/user/passwords.ts"
import * as Secrets from "../../entities/user/secrets.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import * as Ids from "../../runtime/Ids.ts"
import { TroupeApi } from "../Api.ts"
import { cookies, CurrentPrincipal } from "../Auth.ts"
import { GatewayConfig } from "../Config.ts"
import { ApiFailure, fail } from "../Errors.ts"
import * as FirstRun from "../FirstRun.ts"
import { Mailer } from "../Mailer.ts"
import * as Policy from "../Policy.ts"
import { RateLimiter } from "../RateLimit.ts"
import * as Tokens from "../Tokens.ts"
import * as Oidc from "../Oidc.ts"
import * as WebAuthn from "../WebAuthn.ts"
import { call, clientIp, noContent, withoutSessionCookies, withSessionCookies } from "./common.ts"

const codeTtlMs = 30 * 60_000
/** How long a password reset link is good for. */
export const resetTtlMs = 30 * 60_000

export const layer = HttpApiBuilder.group(TroupeApi, "auth", (handlers) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const users = yield* User.client
    const tokens = yield* Tokens.Tokens
    const mailer = yield* Mailer
    const limiter = yield* RateLimiter
    const directory = yield* UserDirectory
    const webauthn = yield* WebAuthn.make
    const oidc = yield* Oidc.make
    /** Refused when single sign-on is the only way in. */
    const notSsoOnly = config.ssoOnly ? fail(403, "sso_only", "This server signs in only through single sign-on (GET /v1/auth/oidc/providers)") : Effect.void

    const mailCode = (email: string, code: string) =>
      mailer.send({
        to: email,
        subject: `Your Troupe verification code: ${code}`,
        text: `Your verification code is ${code}.\n\nIt expires in 30 minutes. If you did not sign up for Troupe, ignore this mail.\n`
      }).pipe(Effect.catchAll((e) => Effect.logError("Could not send the verification mail", e.message)))

    /** Make and mail a reset link to the account of `email`, if there is one (run in the background). */
    const mailResetLink = (email: string) =>
      Effect.gen(function*() {
        const userId = yield* directory.findUserId(email)
        if (!userId) return
        const profile = yield* retryTransient(users(userId).Profile())
        // the address asked for must be the account's own (not its username)
        if (profile.email.toLowerCase() !== email.toLowerCase()) return
        const { token, hash } = Secrets.newResetToken(userId)
        yield* retryTransient(users(userId).SetResetToken(new SetResetToken({ tokenHash: hash, expiresAt: new Date(Date.now() + resetTtlMs) })))
        const link = `${Option.getOrElse(config.publicUrl, () => "").replace(/\/+$/, "")}/reset?token=${encodeURIComponent(token)}`
        yield* mailer.send({
          to: profile.email,
          subject: "Reset your Troupe password",
          text: `Someone (hopefully you) asked to reset the password of your Troupe account.\n\nSet a new password here (the link works once, for 30 minutes):\n${link}\n\nIf you did not ask for this, ignore this mail: your password stays as it is.\n`
        })
      }).pipe(Effect.catchAllCause((cause) => Effect.logError("Could not send a password reset link", cause)))

    /** Issue an access token and answer with the session's tokens (body and cookies). */
    const sessionResponse = (auth: { readonly userId: string; readonly familyId: string; readonly role: "user" | "admin" }, refresh: Tokens.RefreshToken) =>
      Effect.map(tokens.issue(auth), ({ token, expiresIn }) => {
        const refreshToken = Tokens.formatRefreshToken(refresh)
        const csrfToken = Secrets.randomSecret(18)
        const body = {
          access_token: token,
          token_type: "Bearer" as const,
          expires_in: expiresIn,
          refresh_token: refreshToken,
          csrf_token: csrfToken,
          user_id: auth.userId,
          role: auth.role
        }
        return withSessionCookies(HttpServerResponse.unsafeJson(body, { headers: { "cache-control": "no-store" } }), config, { accessToken: token, refreshToken, csrfToken })
      })

    /** Sign in after single sign-on: session cookies on a redirect to `returnTo`, the login's cookie cleared. */
    const ssoResponse = (auth: { readonly userId: string; readonly familyId: string; readonly role: "user" | "admin" }, refresh: Tokens.RefreshToken, returnTo: string) =>
      Effect.map(tokens.issue(auth), ({ token }) =>
        withSessionCookies(
          HttpServerResponse.empty({ status: 302, headers: { location: returnTo, "cache-control": "no-store" } }),
          config,
          { accessToken: token, refreshToken: Tokens.formatRefreshToken(refresh), csrfToken: Secrets.randomSecret(18) }
        ).pipe(HttpServerResponse.unsafeSetCookie(Oidc.cookie, "", { httpOnly: true, sameSite: "lax", secure: config.secureCookies, path: "/v1/auth/oidc", maxAge: 0 })))

    /** A username for an account made at first single sign-on: from the provider's, or the e-mail's local part. */
    const usernameFor = (claims: Oidc.Claims, email: string) =>
      Effect.gen(function*() {
        const base = (claims.preferredUsername?.includes("@") ? undefined : claims.preferredUsername) ?? email.split("@")[0]!
        let name = base.replace(/[^A-Za-z0-9_.-]/g, "").replace(/^[^A-Za-z0-9]+/, "").slice(0, 24)
        if (name.length < 3) name = `user${name}`
        for (let i = 0; i < 5; i++) {
          const candidate = i === 0 ? name : `${name}-${Ids.make("", 4)}`
          if ((yield* call(directory.taken(email, candidate))) !== "username") return candidate
        }
        return `${name}-${Ids.make("", 8)}`
      })

    return handlers
      .handle("signup", ({ payload }) =>
        Effect.gen(function*() {
          yield* notSsoOnly
          const domain = payload.email.split("@").pop()!.toLowerCase()
          const inviteNeeded = config.signup._tag === "InviteOnly" || (config.signup._tag === "Domains" && !config.signup.domains.includes(domain))
          const invite = payload.invite_code?.trim()
          if (inviteNeeded && !invite) {
            return yield* fail(403, "invite_required", config.signup._tag === "Domains" ? "Signing up with this email domain needs an invite code" : "Signing up needs an invite code")
          }
          // the invite first: a bad one learns nothing about which addresses have accounts
          if (invite) {
            const state = yield* call(directory.inviteState(FirstRun.inviteDigest(invite)))
            if (state !== "ok") return yield* fail(403, "invite_invalid", "The invite code is unknown, used up or expired", { reason: state })
          }
          const taken = yield* call(directory.taken(payload.email, payload.username))
          if (taken) return yield* fail(409, `${taken}_taken`, taken === "email" ? "An account with this email exists" : "This username is taken", { field: taken })
          const userId = Ids.make("u", 20)
          const passwordHash = yield* Passwords.hash(payload.password)
          const code = Secrets.emailCode()
          const registered = yield* call(users(userId).Register(
            new Register({
              email: payload.email,
              username: payload.username,
              passwordHash,
              ...(invite ? { inviteCodeHash: FirstRun.inviteDigest(invite) } : {}),
              emailCodeHash: Secrets.emailCodeDigest(userId, code),
              emailCodeExpiresAt: new Date(Date.now() + codeTtlMs),
              // a server that cannot mail codes takes the initial admin invite as proof enough
              initialInviteVerifiesEmail: mailer.kind === "outbox",
              startingCredits: config.startingCredits
            })
          ))
          if (registered.inviteKind === "initial_admin") yield* FirstRun.removeInviteFile(config.dataDir)
          if (registered.profile.emailVerified) {
            return { user_id: userId, email: registered.profile.email, username: registered.profile.username, role: registered.profile.role, email_verification: "not_needed" as const }
          }
          yield* mailCode(payload.email, code)
          return { user_id: userId, email: registered.profile.email, username: registered.profile.username, role: registered.profile.role, email_verification: "sent" as const }
        }))
      .handle("verifyEmail", ({ payload }) =>
        Effect.gen(function*() {
          // attempts count per address across codes (a resend does not start again), before the check
          const address = payload.email.trim().toLowerCase()
          yield* limiter.consume("emailCode", address)
          const userId = yield* call(directory.findUserId(payload.email))
          if (!userId) return yield* fail(400, "invalid_code", "Wrong, expired or too often tried verification code", { reason: "wrong" })
          const profile = yield* call(users(userId).VerifyEmail({ code: payload.code }))
          yield* limiter.reset("emailCode", address)
          return { verified: profile.emailVerified }
        }))
      .handle("resendVerification", ({ payload }) =>
        Effect.gen(function*() {
          // a mailbox cannot be flooded: resends per address, whether or not it has an account
          yield* limiter.consume("mail", `verify:${payload.email.trim().toLowerCase()}`)
          const userId = yield* call(directory.findUserId(payload.email))
          if (userId) {
            const profile = yield* call(users(userId).Profile())
            if (!profile.emailVerified) {
              const code = Secrets.emailCode()
              yield* call(users(userId).SetEmailCode(new SetEmailCode({ codeHash: Secrets.emailCodeDigest(userId, code), expiresAt: new Date(Date.now() + codeTtlMs) })))
              yield* mailCode(profile.email, code)
            }
          }
          // the same answer whether or not the address has an account
          return { sent: true }
        }))
      .handle("passwordReset", ({ payload }) =>
        Effect.gen(function*() {
          yield* notSsoOnly
          const address = payload.email.trim().toLowerCase()
          // per address: past the limit nothing more is mailed, and the answer does not change
          const allowed = yield* limiter.consume("mail", `reset:${address}`).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
          // answered at once: how long the lookup and the mail take tells nobody whether the address has an account
          if (allowed) yield* Effect.forkDaemon(mailResetLink(address))
          return { accepted: true as const }
        }))
      .handle("passwordResetConfirm", ({ payload }) =>
        Effect.gen(function*() {
          yield* notSsoOnly
          const parsed = Secrets.parseResetToken(payload.token)
          if (!parsed) return yield* fail(400, "reset_token_invalid", "Unknown password reset link")
          const passwordHash = yield* Passwords.hash(payload.password)
          const revoked = yield* call(users(parsed.userId).ResetPassword({ tokenHash: parsed.hash, passwordHash }))
          yield* tokens.revoke(revoked)
          // a new password ends the account's lockout (the login limits key on `u:<user id>`)
          yield* limiter.reset("loginAccount", `u:${parsed.userId}`)
          return { revoked_sessions: revoked.length }
        }))
      .handle("login", ({ payload, request }) =>
        Effect.gen(function*() {
          yield* notSsoOnly
          const login = payload.login.trim()
          const userId = yield* call(directory.findUserId(login))
          // one account, one key (by email or username alike); an unknown login by its text
          const account = userId ? `u:${userId}` : `l:${login.toLowerCase()}`
          const here = `${account}|${clientIp(request, config.trustProxy)}`
          // attempts are taken before the password is checked (atomically: parallel guesses cannot
          // all pass a check first); a good one is given back
          yield* limiter.consume("login", here)
          const lockout = Either.getLeft(yield* Effect.either(limiter.consume("loginAccount", account))).pipe(
            Option.map((f) => new ApiFailure({ ...f, details: { ...(f.details as object), second_factor_accepted: true } })),
            Option.getOrUndefined
          )
          if (!userId) {
            yield* Passwords.verifyNobody(payload.password)
            return yield* (lockout ?? fail(401, "invalid_credentials", "Wrong login or password"))
          }
          // locked out from elsewhere: only a password with a second factor is worth checking
          if (lockout && !payload.totp_code && !payload.passkey) return yield* lockout
          const familyId = Ids.make("f", 16)
          const refresh = Tokens.newRefreshToken(userId, familyId)
          const passkey = payload.passkey
            ? { assertion: payload.passkey.response, expected: yield* webauthn.expectLogin(payload.passkey.challenge_id) }
            : undefined
          const auth = yield* call(users(userId).Login({
            password: payload.password,
            ...(payload.totp_code ? { totpCode: payload.totp_code } : {}),
            ...(passkey ? { passkey } : {}),
            ...(lockout ? { secondFactorRequired: true } : {}),
            session: { familyId, tokenHash: refresh.hash, userAgent: (request.headers["user-agent"] ?? "").slice(0, 300), ip: clientIp(request, config.trustProxy) }
          })).pipe(
            Effect.catchAll((f) => {
              // the password was right: the attempt is given back (the answer stays the lockout's)
              const rightPassword = f.code === "totp_required" || f.code === "email_not_verified"
              return Effect.zipRight(
                rightPassword ? Effect.zipRight(limiter.refund("login", here), limiter.refund("loginAccount", account)) : Effect.void,
                Effect.fail(lockout ?? f)
              )
            })
          )
          yield* limiter.reset("login", here)
          yield* limiter.refund("loginAccount", account)
          return yield* sessionResponse(auth, refresh)
        }))
      .handle("passkeyOptions", () =>
        Effect.map(webauthn.authenticationOptions, ({ challengeId, options }) => ({ challenge_id: challengeId, options })))
      .handle("passkeyLogin", ({ payload, request }) =>
        Effect.gen(function*() {
          yield* notSsoOnly
          const expected = yield* webauthn.expectLogin(payload.challenge_id)
          const owner = yield* call(directory.findPasskeyOwner(payload.response.id))
          const handle = webauthn.userHandle(payload.response.response.userHandle)
          if (!owner || (handle !== undefined && handle !== owner)) {
            return yield* fail(401, "passkey_unknown", "This passkey is not registered (or was removed)")
          }
          const familyId = Ids.make("f", 16)
          const refresh = Tokens.newRefreshToken(owner, familyId)
          const auth = yield* call(users(owner).PasskeyLogin({
            assertion: payload.response,
            expected,
            session: { familyId, tokenHash: refresh.hash, userAgent: (request.headers["user-agent"] ?? "").slice(0, 300), ip: clientIp(request, config.trustProxy) }
          }))
          return yield* sessionResponse(auth, refresh)
        }))
      .handle("refresh", ({ payload, request }) =>
        Effect.gen(function*() {
          let value = payload?.refresh_token
          if (!value) {
            value = request.cookies[cookies.refresh]
            const csrf = request.cookies[cookies.csrf]
            const sent = request.headers["x-csrf-token"]
            if (value && (!csrf || !sent || csrf !== sent)) {
              return yield* fail(403, "csrf_failed", "Refreshing with the cookie needs the X-CSRF-Token header (the troupe_csrf cookie's value)")
            }
          }
          if (!value) return yield* fail(401, "invalid_refresh_token", "Send refresh_token (or the troupe_refresh cookie)")
          const parsed = Tokens.parseRefreshToken(value)
          if (Option.isNone(parsed)) return yield* fail(401, "invalid_refresh_token", "Malformed refresh token")
          const current = parsed.value
          const next = Tokens.newRefreshToken(current.userId, current.familyId)
          const auth = yield* call(users(current.userId).Refresh({ familyId: current.familyId, tokenHash: current.hash, nextTokenHash: next.hash })).pipe(
            Effect.tapError((f) => (f.code === "refresh_token_reused" ? tokens.revoke([current.familyId]) : Effect.void))
          )
          return yield* sessionResponse(auth, next)
        }))
      .handle("oidcProviders", () =>
        Effect.succeed({
          providers: oidc.providers.map((p) => ({ id: p.id, name: p.name, start_url: `/v1/auth/oidc/${p.id}/start` })),
          sso_only: config.ssoOnly === true
        }))
      .handle("oidcStart", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const { location, transactionId } = yield* oidc.start(path.provider, urlParams.return_to)
          return HttpServerResponse.empty({ status: 302, headers: { location, "cache-control": "no-store" } }).pipe(
            // Lax: the browser comes back from the provider in a top-level navigation
            HttpServerResponse.unsafeSetCookie(Oidc.cookie, transactionId, {
              httpOnly: true,
              sameSite: "lax",
              secure: config.secureCookies,
              path: "/v1/auth/oidc",
              maxAge: Oidc.transactionTtl
            })
          )
        }))
      .handle("oidcCallback", ({ path, request }) =>
        Effect.gen(function*() {
          const query = new URL(request.url, "http://troupe.invalid").searchParams
          const { provider, claims, returnTo } = yield* oidc.callback(path.provider, request.cookies[Oidc.cookie], query)
          const email = claims.email
          if (!email || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) || email.length > 254) {
            return yield* fail(403, "oidc_email_missing", "The provider sent no usable e-mail address (ask for the `email` scope)")
          }
          const domain = email.split("@").pop()!.toLowerCase()
          if (provider.allowedDomains.length > 0 && !provider.allowedDomains.includes(domain)) {
            return yield* fail(403, "oidc_domain_not_allowed", `Accounts of ${domain} may not sign in through ${provider.name}`, { domain })
          }
          let userId = yield* call(directory.findIdentity(provider.id, claims.subject))
          if (!userId) {
            const existing = yield* call(directory.findUserId(email))
            if (existing) {
              // linking to an account someone else may own needs the provider's word that the address is this user's
              if (!claims.emailVerified) {
                return yield* fail(403, "oidc_email_unverified", "An account with this e-mail exists, and the provider does not say the address is verified: it is not linked")
              }
              userId = existing
            } else {
              userId = Ids.make("u", 20)
              const username = yield* usernameFor(claims, email)
              const registered = yield* call(users(userId).Register(new Register({
                email,
                username,
                // no password: the account signs in through its provider (or sets one by password reset)
                passwordHash: yield* Passwords.hash(Secrets.randomSecret(32)),
                emailCodeHash: Secrets.emailCodeDigest(userId, Secrets.emailCode()),
                emailCodeExpiresAt: new Date(),
                emailVerifiedBySso: claims.emailVerified,
                startingCredits: config.startingCredits
              })))
              yield* Effect.logInfo("Account created at first single sign-on").pipe(Effect.annotateLogs({ user_id: registered.profile.userId, provider: provider.id }))
            }
          }
          const familyId = Ids.make("f", 16)
          const refresh = Tokens.newRefreshToken(userId, familyId)
          const role = Oidc.roleOf(provider, claims)
          const auth = yield* call(users(userId).SsoLogin({
            provider: provider.id,
            subject: claims.subject,
            email,
            emailVerified: claims.emailVerified,
            ...(role ? { role } : {}),
            session: { familyId, tokenHash: refresh.hash, userAgent: (request.headers["user-agent"] ?? "").slice(0, 300), ip: clientIp(request, config.trustProxy) }
          }))
          return yield* ssoResponse(auth, refresh, returnTo)
        }))
      .handle("logout", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          if (Option.isSome(principal.familyId)) {
            yield* call(users(principal.userId).RevokeSession(new RevokeSession({ familyId: principal.familyId.value })))
            yield* tokens.revoke([principal.familyId.value])
          }
          return withoutSessionCookies(noContent(), config)
        }))
      .handle("logoutAll", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const revoked = yield* call(users(principal.userId).RevokeAllSessions(new RevokeAllSessions({ key: Ids.make("r", 16) })))
          yield* tokens.revoke([...revoked, ...Option.toArray(principal.familyId)])
          return withoutSessionCookies(HttpServerResponse.unsafeJson({ revoked_sessions: revoked.length }), config)
        }))
      .handle("totpSetup", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const setup = yield* call(users(principal.userId).BeginTotp({ issuer: config.issuer }))
          return { secret: setup.secret, otpauth_uri: setup.uri }
        }))
      .handle("totpConfirm", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Account)
          const codes = yield* call(users(principal.userId).ConfirmTotp({ code: payload.code }))
          return { backup_codes: codes }
        }))
  }))
