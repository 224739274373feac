/**
 * The gateway's errors: one failure type, `ApiFailure` (an HTTP status, a machine-readable code,
 * a message and optional details), rendered everywhere as `{"error":{"code","message","details?"}}`.
 * The schemas below document each status in the OpenAPI document; `fromEntity` maps the typed
 * errors of the entities and skills to failures.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { isTransient } from "../runtime/Cluster.ts"
import * as SkillErrors from "../skills/Errors.ts"

/** A request failed: answered with `status` and `{"error":{"code","message","details?"}}`. */
export class ApiFailure extends Data.TaggedError("ApiFailure")<{
  readonly status: number
  readonly code: string
  readonly message: string
  readonly details?: unknown
  /** Extra response headers (`Retry-After`). */
  readonly headers?: Readonly<Record<string, string>>
}> {}

/** Fail with an `ApiFailure`. */
export const fail = (status: number, code: string, message: string, details?: unknown) =>
  Effect.fail(new ApiFailure(details === undefined ? { status, code, message } : { status, code, message, details }))

/** The error body. */
export const ErrorBody = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String,
    message: Schema.String,
    details: Schema.optional(Schema.Unknown)
  })
}).annotations({ identifier: "ErrorBody" })

const failureSchema = (status: number, identifier: string, description: string) =>
  Schema.transform(
    ErrorBody,
    Schema.declare((u): u is ApiFailure => u instanceof ApiFailure && u.status === status, { identifier: `${identifier}Failure` }),
    {
      strict: true,
      decode: (body) => new ApiFailure({ status, ...body.error }),
      encode: (f) => ({ error: f.details === undefined ? { code: f.code, message: f.message } : { code: f.code, message: f.message, details: f.details } })
    }
  ).annotations({ ...HttpApiSchema.annotations({ status }), identifier, description })

export const BadRequest = failureSchema(400, "BadRequest", "Invalid input: `details.issues` lists each field path and problem")
export const Unauthorized = failureSchema(401, "Unauthorized", "Missing, invalid or expired credentials")
export const PaymentRequired = failureSchema(402, "PaymentRequired", "Not enough credits, or an API key's spend cap reached")
export const Forbidden = failureSchema(403, "Forbidden", "Authenticated but not allowed (scope, role, CSRF)")
export const NotFound = failureSchema(404, "NotFound", "No such resource (or not yours)")
export const Conflict = failureSchema(409, "Conflict", "The resource is in a state that does not allow this")
export const PayloadTooLarge = failureSchema(413, "PayloadTooLarge", "Request body too large")
export const TooManyRequests = failureSchema(429, "TooManyRequests", "Rate limited: retry after `Retry-After` seconds")
export const BadGateway = failureSchema(502, "BadGateway", "A skill failed")
export const Unavailable = failureSchema(503, "Unavailable", "A backend is unavailable; retry")
export const GatewayTimeout = failureSchema(504, "GatewayTimeout", "A skill timed out")

/** Render a parse error as field issues: `[{path: "email", message}]`. */
export const issuesOf = (error: ParseResult.ParseError) =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => ({ path: i.path.map(String).join("."), message: i.message }))

type Tagged = { readonly _tag: string }

/**
 * An entity, skill or cluster error as an `ApiFailure`. Not-owner errors answer 404 like
 * not-found ones, so nobody learns which chats exist.
 */
export const fromEntity = (e: Tagged): ApiFailure => {
  const f = (status: number, code: string, message: string, details?: unknown) =>
    new ApiFailure(details === undefined ? { status, code, message } : { status, code, message, details })
  const fields = e as Tagged & Record<string, unknown>
  switch (e._tag) {
    case "InsufficientCredits":
      return fields.scope
        ? f(402, "spend_cap_exceeded", "This API key's spend cap does not allow this", { available: fields.available, requested: fields.requested })
        : f(402, "insufficient_credits", "Not enough credits", { available: fields.available, requested: fields.requested })
    case "TurnInProgress":
      return f(409, "turn_in_progress", "A turn is still running: wait for it or cancel it", { turn_id: fields.turnId })
    case "ChatNotFound":
    case "NotChatOwner":
      return f(404, "chat_not_found", "No such chat")
    case "ChatExists":
      return f(409, "chat_exists", "The chat already exists")
    case "TurnNotFound":
      return f(404, "turn_not_found", "No such turn")
    case "ConfirmationNotFound":
      return f(404, "confirmation_not_found", "No running turn waits for the answer to this call (answered, timed out, or the turn ended)", { call_id: fields.callId })
    case "MessageNotFound":
      return f(404, "message_not_found", "No such message")
    case "ShareNotFound":
      return f(404, "share_not_found", "No such share")
    case "UserNotFound":
      return f(404, "user_not_found", "No such user")
    case "UserExists":
      return fields.field === "username"
        ? f(409, "username_taken", "This username is taken", { field: "username" })
        : f(409, "email_taken", "An account with this email exists", { field: "email" })
    case "InviteInvalid":
      return f(403, "invite_invalid", "The invite code is unknown, used up or expired", { reason: fields.reason })
    case "InvalidCredentials":
      return f(401, "invalid_credentials", "Wrong login or password")
    case "EmailNotVerified":
      return f(403, "email_not_verified", "Verify your email address first (POST /v1/auth/verify_email)")
    case "TotpRequired":
      return f(401, "totp_required", "Two-factor authentication is on: send totp_code (an authenticator or backup code)")
    case "InvalidTotp":
      return f(401, "invalid_totp", "Wrong or already used two-factor code")
    case "TotpState":
      return fields.reason === "already_enabled"
        ? f(409, "totp_already_enabled", "Two-factor authentication is already on")
        : f(409, "totp_not_started", "Start with POST /v1/auth/2fa/setup")
    case "InvalidCode":
      return f(400, "invalid_code", "Wrong, expired or too often tried verification code", { reason: fields.reason })
    case "InvalidRefreshToken":
      return fields.reuse
        ? f(401, "refresh_token_reused", "This refresh token was already used: the session is revoked, sign in again")
        : f(401, "invalid_refresh_token", "Unknown, revoked or expired refresh token")
    case "ResetTokenInvalid":
      return fields.reason === "used"
        ? f(400, "reset_token_used", "This password reset link was used already: ask for a new one")
        : fields.reason === "expired"
        ? f(400, "reset_token_expired", "This password reset link expired (links last 30 minutes): ask for a new one")
        : f(400, "reset_token_invalid", "Unknown password reset link")
    case "ApiKeyInvalid":
      return f(401, "invalid_api_key", "Unknown, revoked or expired API key", { reason: fields.reason })
    case "ApiKeyNotFound":
      return f(404, "api_key_not_found", "No such API key")
    case "MateNotFound":
      return f(404, "mate_not_found", "No such mate")
    case "DefaultMate":
      return f(409, "default_mate", "The default mate cannot be deleted")
    case "LimitReached":
      return f(409, "limit_reached", `Limit reached: at most ${fields.limit} ${fields.what}`, { what: fields.what, limit: fields.limit })
    case "HoldNotFound":
    case "HoldNotActive":
    case "HoldClosed":
    case "HoldExceeded":
    case "KeyConflict":
      return f(409, "credit_conflict", "The credit operation conflicts with an earlier one")
    case "HandlerFailed":
      // the entity refused the message for good (see runtime/EntityGuard.ts): never retried
      return fields.reason === "unstorable"
        ? f(400, "invalid_request", "A value in this request cannot be stored", { reason: "unstorable" })
        : f(500, "internal_error", "Internal error")
    case "SkillTimeout":
    case "SkillMemoryExceeded":
    case "SkillEgressDenied":
    case "SkillFailed":
    case "InvalidInput":
    case "AppNotFound":
    case "SkillNotFound": {
      const d = SkillErrors.describe(e as SkillErrors.InvokeError)
      return f(d.status, d.code, d.message, d.details)
    }
  }
  if (isTransient(e) || e._tag === "DirectoryUnavailable" || e._tag === "AlreadyProcessingMessage" || e._tag === "MailboxFull" || e._tag === "PersistenceError") {
    return f(503, "unavailable", "A backend is busy or restarting; retry")
  }
  return f(500, "internal_error", "Internal error")
}

/** Map every typed error of an entity call to an `ApiFailure`. */
export const entity = <A, E extends Tagged, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, ApiFailure, R> =>
  Effect.mapError(effect, (e) => (e instanceof ApiFailure ? e : fromEntity(e)))
