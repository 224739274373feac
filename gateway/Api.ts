/**
 * The public API, schema first: every route, its input and output schemas and its errors. The
 * OpenAPI document (`GET /v1/openapi.json`) and the docs page (`/docs`) are generated from it;
 * the handlers live in `handlers/`. Field names are snake_case; times are ISO 8601 strings.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Email, PlainText, Scope, Username } from "../entities/user/protocol.ts"
import { AppDescription } from "../skills/Skills.ts"
import { CreditPackagesGroup, PaymentsGroup, PaymentWebhooksGroup } from "./api/payments.ts"
import { Authentication } from "./Auth.ts"
import {
  BadGateway,
  BadRequest,
  Conflict,
  Forbidden,
  GatewayTimeout,
  NotFound,
  PayloadTooLarge,
  PaymentRequired,
  TooManyRequests,
  Unauthorized,
  Unavailable
} from "./Errors.ts"

// ---------------------------------------------------------------------------------------------
// Shared schemas

/** Ids in paths and bodies. */
export const Id = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}$/, { message: () => "must be 1-64 letters, digits, _ or -" }))

const Password = PlainText(256).pipe(
  Schema.minLength(10, { message: () => "must be at least 10 characters" }),
  Schema.maxLength(256, { message: () => "must be at most 256 characters" })
)

const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100))
const Before = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())
const Paging = Schema.Struct({ before: Schema.optional(Before), limit: Schema.optional(Limit) })

/** The signed-in user. */
export const Me = Schema.Struct({
  id: Schema.String,
  email: Schema.String,
  username: Schema.String,
  display_name: Schema.String,
  role: Schema.Literal("user", "admin"),
  email_verified: Schema.Boolean,
  totp_enabled: Schema.Boolean,
  settings: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  created_at: Schema.Date
}).annotations({ identifier: "Me" })

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

export const ApiKey = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  scopes: Schema.Array(Schema.String),
  expires_at: Schema.NullOr(Schema.Date),
  spend_cap: Schema.NullOr(Schema.Number),
  created_at: Schema.Date
}).annotations({ identifier: "ApiKey" })

export const Chat = Schema.Struct({
  id: Schema.String,
  mate_id: Schema.String,
  title: Schema.String,
  created_at: Schema.Date,
  updated_at: Schema.Date,
  last_seq: Schema.Number,
  running_turn: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Chat" })

export const Message = Schema.Struct({
  id: Schema.String,
  role: Schema.Literal("user", "mate"),
  author_id: Schema.String,
  text: Schema.String,
  turn_id: Schema.String,
  status: Schema.Literal("running", "done", "failed", "cancelled"),
  created_at: Schema.Date
}).annotations({ identifier: "Message" })

export const Mate = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  system_prompt: Schema.String,
  model: Schema.String,
  allowed_skills: Schema.Array(Schema.String),
  is_default: Schema.Boolean,
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotations({ identifier: "Mate" })

const MateName = PlainText(80).pipe(Schema.minLength(1))
const SystemPrompt = PlainText(20_000)
const Model = PlainText(100).pipe(Schema.minLength(1))
const AllowedSkills = Schema.Array(Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9_.-]{0,63}(\.[A-Za-z0-9_-]{1,64}|\.\*)?$/))).pipe(Schema.maxItems(100))

export const Balance = Schema.Struct({ available: Schema.Number, reserved: Schema.Number }).annotations({ identifier: "Balance" })

const common = <G extends HttpApiGroup.HttpApiGroup.Any>(group: G) => group

// ---------------------------------------------------------------------------------------------
// Groups

export class AuthGroup extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("signup", "/v1/auth/signup")
      .setPayload(Schema.Struct({ invite_code: Schema.optional(PlainText(200)), email: Email, username: Username, password: Password }))
      .addSuccess(Schema.Struct({ user_id: Schema.String, email: Schema.String, username: Schema.String, role: Schema.Literal("user", "admin"), email_verification: Schema.Literal("sent") }), { status: 201 })
      .addError(Forbidden)
      .addError(Conflict)
      .annotate(OpenApi.Description, "Create an account. Whether `invite_code` is needed depends on TROUPE_SIGNUP. A 6-digit code is mailed for /v1/auth/verify_email.")
  )
  .add(
    HttpApiEndpoint.post("verifyEmail", "/v1/auth/verify_email")
      .setPayload(Schema.Struct({ email: Email, code: Schema.String.pipe(Schema.pattern(/^\d{6}$/, { message: () => "must be 6 digits" })) }))
      .addSuccess(Schema.Struct({ verified: Schema.Boolean }))
  )
  .add(
    HttpApiEndpoint.post("resendVerification", "/v1/auth/resend_verification")
      .setPayload(Schema.Struct({ email: Email }))
      .addSuccess(Schema.Struct({ sent: Schema.Boolean }), { status: 202 })
  )
  .add(
    HttpApiEndpoint.post("login", "/v1/auth/login")
      .setPayload(Schema.Struct({ login: PlainText(254).pipe(Schema.minLength(1)), password: PlainText(256), totp_code: Schema.optional(PlainText(20)) }))
      .addSuccess(Session)
      .addError(Forbidden)
      .annotate(OpenApi.Description, "Sign in with an email or username. With 2FA on, `totp_code` (authenticator or backup code) is required: 401 `totp_required` says so.")
  )
  .add(
    HttpApiEndpoint.post("refresh", "/v1/auth/refresh")
      .setPayload(Schema.NullOr(Schema.Struct({ refresh_token: Schema.optional(PlainText(300)) })))
      .addSuccess(Session)
      .addError(Forbidden)
      .annotate(OpenApi.Description, "Rotate the refresh token (body, or the troupe_refresh cookie with X-CSRF-Token). A reused refresh token revokes its whole session: 401 `refresh_token_reused`.")
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
      .setPayload(Schema.Struct({ code: Schema.String.pipe(Schema.pattern(/^\d{6}$/, { message: () => "must be 6 digits" })) }))
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

export class MeGroup extends HttpApiGroup.make("me")
  .add(HttpApiEndpoint.get("get", "/v1/me").addSuccess(Me))
  .add(
    HttpApiEndpoint.patch("update", "/v1/me")
      .setPayload(Schema.Struct({ display_name: Schema.optional(PlainText(80)), settings: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })) }))
      .addSuccess(Me)
  )
  .add(HttpApiEndpoint.del("delete", "/v1/me").addSuccess(HttpApiSchema.Empty(204)).annotate(OpenApi.Description, "Delete the account: every chat is crypto-shredded."))
  .add(
    HttpApiEndpoint.get("sessions", "/v1/me/sessions").addSuccess(Schema.Struct({
      sessions: Schema.Array(Schema.Struct({ id: Schema.String, created_at: Schema.Date, last_used_at: Schema.Date, user_agent: Schema.String, ip: Schema.String, current: Schema.Boolean }))
    }))
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

export class ApiKeysGroup extends HttpApiGroup.make("api_keys")
  .add(
    HttpApiEndpoint.post("create", "/v1/api_keys")
      .setPayload(Schema.Struct({
        name: PlainText(80).pipe(Schema.minLength(1)),
        scopes: Schema.Array(Scope).pipe(Schema.minItems(1), Schema.maxItems(20)),
        expires_at: Schema.optional(Schema.Date),
        spend_cap: Schema.optional(Schema.Int.pipe(Schema.nonNegative(), Schema.lessThanOrEqualTo(1_000_000_000_000)))
      }))
      .addSuccess(Schema.extend(ApiKey, Schema.Struct({ key: Schema.String })).annotations({ identifier: "NewApiKey", description: "`key` is shown only once" }), { status: 201 })
      .addError(Conflict)
  )
  .add(HttpApiEndpoint.get("list", "/v1/api_keys").addSuccess(Schema.Struct({ api_keys: Schema.Array(ApiKey) })))
  .add(HttpApiEndpoint.del("revoke", "/v1/api_keys/:id").setPath(Schema.Struct({ id: Id })).addSuccess(HttpApiSchema.Empty(204)).addError(NotFound))
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

const ChatPath = Schema.Struct({ id: Id })

export class ChatsGroup extends HttpApiGroup.make("chats")
  .add(
    HttpApiEndpoint.post("create", "/v1/chats")
      .setPayload(Schema.Struct({ mate_id: Schema.optional(Id), title: Schema.optional(PlainText(200)) }))
      .addSuccess(Chat, { status: 201 })
  )
  .add(HttpApiEndpoint.get("list", "/v1/chats").setUrlParams(Paging).addSuccess(Schema.Struct({ chats: Schema.Array(Chat), next_before: Schema.NullOr(Schema.Number) })))
  .add(
    HttpApiEndpoint.get("get", "/v1/chats/:id").setPath(ChatPath).setUrlParams(Paging)
      .addSuccess(Schema.Struct({ chat: Chat, messages: Schema.Array(Message), next_before: Schema.NullOr(Schema.Number) }))
  )
  .add(
    HttpApiEndpoint.post("post", "/v1/chats/:id/messages").setPath(ChatPath)
      .setPayload(Schema.Struct({
        client_message_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128), Schema.pattern(/^[\w.:-]+$/, { message: () => "must be 1-128 of letters, digits, _ . : -" })),
        text: PlainText(32_000).pipe(Schema.minLength(1))
      }))
      .addSuccess(Schema.Struct({ message_id: Schema.String, turn_id: Schema.String, seq: Schema.Number, duplicate: Schema.Boolean }), { status: 202 })
      .addError(Conflict)
      .addError(PaymentRequired)
      .annotate(OpenApi.Description, "Post a message and start the mate's turn. Idempotent by client_message_id. Follow the turn on /events.")
  )
  .add(
    HttpApiEndpoint.get("events", "/v1/chats/:id/events").setPath(ChatPath)
      .setUrlParams(Schema.Struct({ after: Schema.optional(Before) }))
      .addSuccess(HttpApiSchema.Text({ contentType: "text/event-stream" }))
      .annotate(OpenApi.Description, "Server-Sent Events: every journal event after `after` (or the Last-Event-ID header), then live ones. Each event has `id: <seq>` and `event: <kind>`; comment lines are heartbeats.")
  )
  .add(
    HttpApiEndpoint.post("cancel", "/v1/chats/:id/cancel").setPath(ChatPath)
      .setPayload(Schema.NullOr(Schema.Struct({ turn_id: Schema.optional(Id) })))
      .addSuccess(Schema.Struct({ turn_id: Schema.String, status: Schema.Literal("running", "done", "failed", "cancelled") }))
      .addError(Conflict)
  )
  .add(
    HttpApiEndpoint.del("deleteMessage", "/v1/chats/:id/messages/:message_id")
      .setPath(Schema.Struct({ id: Id, message_id: Id }))
      .addSuccess(HttpApiSchema.Empty(204))
  )
  .add(HttpApiEndpoint.del("delete", "/v1/chats/:id").setPath(ChatPath).addSuccess(HttpApiSchema.Empty(204)))
  .add(
    HttpApiEndpoint.post("share", "/v1/chats/:id/share").setPath(ChatPath)
      .addSuccess(Schema.Struct({ token: Schema.String, key: Schema.String, url: Schema.String }), { status: 201 })
      .annotate(OpenApi.Description, "A read-only share link `/s/{token}#{key}`: the key stays in the URL fragment and never reaches the server.")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(PayloadTooLarge)
  .addError(Unavailable)
{}

export class SharesGroup extends HttpApiGroup.make("shares")
  .add(
    HttpApiEndpoint.get("get", "/v1/shares/:token")
      .setPath(Schema.Struct({ token: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$/)) }))
      .addSuccess(Schema.Struct({ ciphertext: Schema.String, created_at: Schema.Date }))
      .annotate(OpenApi.Description, "The encrypted snapshot of a shared chat (no authentication): decrypt it with the key from the link's fragment.")
  )
  .addError(BadRequest)
  .addError(NotFound)
  .addError(TooManyRequests)
{}

export class MatesGroup extends HttpApiGroup.make("mates")
  .add(HttpApiEndpoint.get("list", "/v1/mates").addSuccess(Schema.Struct({ mates: Schema.Array(Mate) })))
  .add(
    HttpApiEndpoint.post("create", "/v1/mates")
      .setPayload(Schema.Struct({ name: MateName, system_prompt: Schema.optional(SystemPrompt), model: Schema.optional(Model), allowed_skills: Schema.optional(AllowedSkills) }))
      .addSuccess(Mate, { status: 201 })
      .addError(Conflict)
  )
  .add(HttpApiEndpoint.get("get", "/v1/mates/:id").setPath(Schema.Struct({ id: Id })).addSuccess(Mate))
  .add(
    HttpApiEndpoint.patch("update", "/v1/mates/:id").setPath(Schema.Struct({ id: Id }))
      .setPayload(Schema.Struct({ name: Schema.optional(MateName), system_prompt: Schema.optional(SystemPrompt), model: Schema.optional(Model), allowed_skills: Schema.optional(AllowedSkills) }))
      .addSuccess(Mate)
  )
  .add(HttpApiEndpoint.del("delete", "/v1/mates/:id").setPath(Schema.Struct({ id: Id })).addSuccess(HttpApiSchema.Empty(204)).addError(Conflict))
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

export const LedgerEntry = Schema.Struct({
  id: Schema.Number,
  key: Schema.String,
  kind: Schema.String,
  bucket: Schema.Literal("available", "reserved"),
  amount: Schema.Number,
  reason: Schema.NullOr(Schema.String),
  created_at: Schema.Date
}).annotations({ identifier: "LedgerEntry" })

export class CreditsGroup extends HttpApiGroup.make("credits")
  .add(HttpApiEndpoint.get("balance", "/v1/credits").addSuccess(Balance))
  .add(HttpApiEndpoint.get("ledger", "/v1/credits/ledger").setUrlParams(Paging).addSuccess(Schema.Struct({ entries: Schema.Array(LedgerEntry), next_before: Schema.NullOr(Schema.Number) })))
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

export const Invite = Schema.Struct({
  id: Schema.String,
  uses: Schema.Number,
  used: Schema.Number,
  expires_at: Schema.NullOr(Schema.Date),
  gift_credits: Schema.Number,
  created_at: Schema.Date
}).annotations({ identifier: "Invite" })

export class AdminGroup extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("createInvite", "/v1/admin/invites")
      .setPayload(Schema.Struct({
        uses: Schema.Int.pipe(Schema.between(1, 10_000)),
        expires_at: Schema.optional(Schema.Date),
        gift_credits: Schema.optional(Schema.Int.pipe(Schema.between(0, 1_000_000_000)))
      }))
      .addSuccess(Schema.extend(Invite, Schema.Struct({ code: Schema.String })).annotations({ identifier: "NewInvite", description: "`code` is shown only once" }), { status: 201 })
  )
  .add(HttpApiEndpoint.get("invites", "/v1/admin/invites").addSuccess(Schema.Struct({ invites: Schema.Array(Invite) })))
  .add(
    HttpApiEndpoint.get("users", "/v1/admin/users").setUrlParams(Paging).addSuccess(Schema.Struct({
      users: Schema.Array(Schema.Struct({ id: Schema.String, email: Schema.String, username: Schema.String, role: Schema.Literal("user", "admin"), email_verified: Schema.Boolean, created_at: Schema.Date })),
      next_before: Schema.NullOr(Schema.Number)
    }))
  )
  .add(
    HttpApiEndpoint.post("grant", "/v1/admin/credits/grant")
      .setPayload(Schema.Struct({
        user_id: Id,
        amount: Schema.Int.pipe(Schema.between(1, 1_000_000_000)),
        reason: PlainText(200).pipe(Schema.minLength(1)),
        idempotency_key: Schema.optional(Schema.String.pipe(Schema.pattern(/^[\w:.@-]{1,100}$/)))
      }))
      .addSuccess(Schema.extend(Balance, Schema.Struct({ user_id: Schema.String })))
      .addError(NotFound)
      .annotate(OpenApi.Description, "Grant credits. With `idempotency_key`, retries grant once.")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

export class AppsGroup extends HttpApiGroup.make("apps")
  .add(HttpApiEndpoint.get("list", "/v1/apps").addSuccess(Schema.Struct({ apps: Schema.Array(AppDescription) })))
  .add(HttpApiEndpoint.get("get", "/v1/apps/:app").setPath(Schema.Struct({ app: Id })).addSuccess(AppDescription))
  .add(
    HttpApiEndpoint.post("invoke", "/v1/apps/:app/skills/:skill")
      .setPath(Schema.Struct({ app: Id, skill: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.-]{1,64}$/)) }))
      .setPayload(Schema.Struct({ input: Schema.Unknown }))
      .addSuccess(Schema.Struct({ result: Schema.Unknown, credits_charged: Schema.Number }))
      .addError(PaymentRequired)
      .addError(BadGateway)
      .addError(GatewayTimeout)
      .annotate(OpenApi.Description, "Invoke a skill (JWT, or an API key with scope `skills` or `skills:<app>`). Credits are reserved from the estimate, settled at the actual price, released on failure.")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

/** The whole API. */
export class TroupeApi extends HttpApi.make("troupe")
  .add(common(AuthGroup))
  .add(MeGroup)
  .add(ApiKeysGroup)
  .add(ChatsGroup)
  .add(SharesGroup)
  .add(MatesGroup)
  .add(CreditsGroup)
  .add(AdminGroup)
  .add(AppsGroup)
  .add(CreditPackagesGroup)
  .add(PaymentsGroup)
  .add(PaymentWebhooksGroup)
  .annotate(OpenApi.Title, "Troupe API")
  .annotate(OpenApi.Version, "1")
  .annotate(OpenApi.Description, "Authenticate with `Authorization: Bearer <access token or API key>`. Errors are `{\"error\":{\"code\",\"message\",\"details?\"}}`. See docs/api.md.")
  .annotate(OpenApi.Transform, (spec) => replaceDecodeError(spec))
{}

/**
 * Requests that fail decoding answer with our error body (see Server.ts), not the library's
 * `HttpApiDecodeError`; make the document say so.
 */
const replaceDecodeError = (spec: Record<string, unknown>): Record<string, unknown> => {
  const text = JSON.stringify(spec).replaceAll("#/components/schemas/HttpApiDecodeError", "#/components/schemas/ErrorBody")
  const out = JSON.parse(text) as { components?: { schemas?: Record<string, unknown> } }
  if (out.components?.schemas) delete out.components.schemas["HttpApiDecodeError"]
  return out
}
