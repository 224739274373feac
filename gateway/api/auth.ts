/** `/v1/auth/*`: signup, email verification, login with 2FA, refresh, logout. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { AssertionJson, Email, PlainText, Username } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadGateway, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Password } from "./common.ts"

/** Tokens of a session. */
export const Session = Schema.Struct({
  access_token: Schema.String,
  token_type: Schema.Literal("Bearer"),
  expires_in: Schema.Number,
  refresh_token: Schema.String,
  csrf_token: Schema.String,
  user_id: Schema.String,
  role: Schema.Literal("user", "admin")
}).annotations({ identifier: "Session", description: "Also set as HttpOnly SameSite=Strict cookies (troupe_access, troupe_refresh) plus troupe_csrf" })

/** A challenge's id and the WebAuthn options to hand to the browser. */
export const PasskeyOptions = Schema.Struct({
  challenge_id: Schema.String,
  options: Schema.Unknown
}).annotations({ identifier: "PasskeyOptions" })

/** A passkey's answer to a challenge. */
export const PasskeyAnswer = Schema.Struct({ challenge_id: PlainText(64).pipe(Schema.minLength(1)), response: AssertionJson }).annotations({ identifier: "PasskeyAnswer" })

const SixDigits = Schema.String.pipe(Schema.pattern(/^\d{6}$/, { message: () => "must be 6 digits" }))

export class AuthGroup extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("signup", "/v1/auth/signup")
      .setPayload(Schema.Struct({ invite_code: Schema.optional(PlainText(200)), email: Email, username: Username, password: Password }))
      .addSuccess(Schema.Struct({ user_id: Schema.String, email: Schema.String, username: Schema.String, role: Schema.Literal("user", "admin"), email_verification: Schema.Literal("sent", "not_needed") }), { status: 201 })
      .addError(Forbidden)
      .addError(Conflict)
      .annotate(OpenApi.Description, "Create an account. Whether `invite_code` is needed depends on TROUPE_SIGNUP. A 6-digit code is mailed for /v1/auth/verify_email (`email_verification: sent`); the initial admin invite on a server without SMTP needs none (`not_needed`).")
  )
  .add(
    HttpApiEndpoint.post("verifyEmail", "/v1/auth/verify_email")
      .setPayload(Schema.Struct({ email: Email, code: SixDigits }))
      .addSuccess(Schema.Struct({ verified: Schema.Boolean }))
  )
  .add(
    HttpApiEndpoint.post("resendVerification", "/v1/auth/resend_verification")
      .setPayload(Schema.Struct({ email: Email }))
      .addSuccess(Schema.Struct({ sent: Schema.Boolean }), { status: 202 })
  )
  .add(
    HttpApiEndpoint.post("login", "/v1/auth/login")
      .setPayload(Schema.Struct({
        login: PlainText(254).pipe(Schema.minLength(1)),
        password: PlainText(256),
        totp_code: Schema.optional(PlainText(20)),
        passkey: Schema.optional(PasskeyAnswer)
      }))
      .addSuccess(Session)
      .addError(Forbidden)
      .annotate(OpenApi.Description, "Sign in with an email or username. With 2FA on, a second factor is required (401 `totp_required` says so): `totp_code` (authenticator or backup code) or `passkey` (a passkey of the account answering POST /v1/auth/passkey/options).")
  )
  .add(
    HttpApiEndpoint.post("passkeyOptions", "/v1/auth/passkey/options")
      .addSuccess(PasskeyOptions)
      .addError(Conflict)
      .annotate(OpenApi.Description, "Options for `navigator.credentials.get()` (discoverable credentials, user verification required) and the id of their challenge (good once, 5 minutes). 409 `passkeys_not_configured` without TROUPE_PUBLIC_URL.")
  )
  .add(
    HttpApiEndpoint.post("passkeyLogin", "/v1/auth/passkey/login")
      .setPayload(PasskeyAnswer)
      .addSuccess(Session)
      .addError(Forbidden)
      .addError(Conflict)
      .annotate(OpenApi.Description, "Sign in with a passkey alone. 400 `passkey_challenge_used` (a replayed response), `passkey_challenge_unknown`, `passkey_wrong_origin`; 401 `passkey_unknown`, `passkey_cloned` (the signature counter went backwards), `passkey_invalid`.")
  )
  .add(
    HttpApiEndpoint.post("refresh", "/v1/auth/refresh")
      .setPayload(Schema.NullOr(Schema.Struct({ refresh_token: Schema.optional(PlainText(300)) })))
      .addSuccess(Session)
      .addError(Forbidden)
      .annotate(OpenApi.Description, "Rotate the refresh token (body, or the troupe_refresh cookie with X-CSRF-Token). A reused refresh token revokes its whole session: 401 `refresh_token_reused`.")
  )
  .add(
    HttpApiEndpoint.post("passwordReset", "/v1/auth/password_reset")
      .setPayload(Schema.Struct({ email: Email }))
      .addSuccess(Schema.Struct({ accepted: Schema.Literal(true) }), { status: 202 })
      .annotate(OpenApi.Description, "Ask for a password reset link (`<TROUPE_PUBLIC_URL>/reset?token=…`, single use, valid 30 minutes) by mail. The answer is the same whether or not the address has an account; at most TROUPE_RATE_LIMIT_MAIL mails per address.")
  )
  .add(
    HttpApiEndpoint.post("passwordResetConfirm", "/v1/auth/password_reset/confirm")
      .setPayload(Schema.Struct({ token: PlainText(200).pipe(Schema.minLength(1)), password: Password }))
      .addSuccess(Schema.Struct({ revoked_sessions: Schema.Number }))
      .annotate(OpenApi.Description, "Set a new password with the link's token. Every session and refresh token of the account is revoked. 400 `reset_token_used`, `reset_token_expired` or `reset_token_invalid`.")
  )
  .add(
    HttpApiEndpoint.get("oidcProviders", "/v1/auth/oidc/providers")
      .addSuccess(Schema.Struct({
        providers: Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String, start_url: Schema.String })),
        sso_only: Schema.Boolean
      }))
      .annotate(OpenApi.Description, "The single sign-on providers (TROUPE_OIDC_PROVIDERS) and whether SSO is the only way in (TROUPE_SSO_ONLY).")
  )
  .add(
    HttpApiEndpoint.get("oidcStart", "/v1/auth/oidc/:provider/start")
      .setPath(Schema.Struct({ provider: Schema.String }))
      .setUrlParams(Schema.Struct({ return_to: Schema.optional(Schema.String) }))
      .addSuccess(HttpApiSchema.Empty(302))
      .addError(NotFound)
      .addError(Conflict)
      .addError(BadGateway)
      .annotate(OpenApi.Description, "Start a login at the provider: a redirect (authorization code flow with PKCE, state and nonce) and the troupe_oidc cookie that binds the login to this browser. `return_to`: a local path to land on afterwards.")
  )
  .add(
    HttpApiEndpoint.get("oidcCallback", "/v1/auth/oidc/:provider/callback")
      .setPath(Schema.Struct({ provider: Schema.String }))
      .addSuccess(HttpApiSchema.Empty(302))
      .addError(Forbidden)
      .addError(NotFound)
      .addError(Conflict)
      .addError(BadGateway)
      .annotate(OpenApi.Description, "Where the provider sends the browser back. Signs in (session cookies, as after a login) and redirects to `return_to`. The first login creates the account, or links an existing account with the same e-mail only when the provider says the e-mail is verified. 400 `oidc_state_mismatch`, `oidc_wrong_issuer`, `oidc_nonce_mismatch`; 403 `oidc_email_unverified`, `oidc_domain_not_allowed`; 401 `oidc_denied`; 502 `oidc_failed`.")
  )
  .add(HttpApiEndpoint.post("logout", "/v1/auth/logout").addSuccess(HttpApiSchema.Empty(204)).middleware(Authentication))
  .add(HttpApiEndpoint.post("logoutAll", "/v1/auth/logout_all").addSuccess(Schema.Struct({ revoked_sessions: Schema.Number })).middleware(Authentication))
  .add(
    HttpApiEndpoint.post("totpSetup", "/v1/auth/2fa/setup")
      .addSuccess(Schema.Struct({ secret: Schema.String, otpauth_uri: Schema.String }))
      .addError(Conflict)
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.post("totpConfirm", "/v1/auth/2fa/confirm")
      .setPayload(Schema.Struct({ code: SixDigits }))
      .addSuccess(Schema.Struct({ backup_codes: Schema.Array(Schema.String) }))
      .addError(Conflict)
      .middleware(Authentication)
  )
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(TooManyRequests)
  .addError(PayloadTooLarge)
  .addError(Unavailable)
{}
