/**
 * The gateway's errors: one failure type, `ApiFailure` (an HTTP status, a machine-readable code,
 * a message and optional details), rendered everywhere as `{"error":{"code","message","details?"}}`.
 * The schemas below document each status in the OpenAPI document; `fromEntity` maps the typed
 * errors of the entities and skills to failures.
 */
import type * as ClusterError from "@effect/cluster/ClusterError"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcClientError from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { Chat } from "../entities/chat/protocol.ts"
import type { HoldClosed, HoldExceeded } from "../entities/credit/hold.ts"
import type { Credit } from "../entities/credit/protocol.ts"
import type { DirectoryUnavailable } from "../entities/user/directory.ts"
import type { User } from "../entities/user/protocol.ts"
import type { SkillCall } from "../skills/Calls.ts"
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

/** The typed errors of an entity's messages (its protocol's error schemas). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ErrorsOf<T extends { readonly protocol: RpcGroup.RpcGroup<any> }> = Rpc.Error<RpcGroup.Rpcs<T["protocol"]>>

/**
 * Every typed error the handlers receive from entities, services below them and the cluster.
 * Derived from the protocols: an error added to an entity's protocol joins this union, and
 * `fromEntity` does not compile until it maps it.
 */
export type EntityError =
  | ErrorsOf<typeof User>
  | ErrorsOf<typeof Chat>
  | ErrorsOf<typeof Credit>
  | ErrorsOf<typeof SkillCall>
  | DirectoryUnavailable
  | SkillErrors.InvokeError
  | HoldClosed
  | HoldExceeded
  // the cluster's client errors (a call that may succeed when retried)
  | ClusterError.PersistenceError
  | ClusterError.MailboxFull
  | ClusterError.AlreadyProcessingMessage
  | ClusterError.EntityNotAssignedToRunner
  | ClusterError.RunnerUnavailable
  | ClusterError.RunnerNotRegistered
  | ClusterError.MalformedMessage
  | RpcClientError.RpcClientError

const f = (status: number, code: string, message: string, details?: unknown) =>
  new ApiFailure(details === undefined ? { status, code, message } : { status, code, message, details })

const unavailable = () => f(503, "unavailable", "A backend is busy or restarting; retry")

/**
 * An entity, skill or cluster error as an `ApiFailure`. Not-owner errors answer 404 like
 * not-found ones, so nobody learns which chats exist. Errors that carry their HTTP status and code
 * (`skills/Errors.ts`) answer with them (`SkillErrors.describe`).
 */
export const fromEntity = (e: EntityError): ApiFailure => {
  switch (e._tag) {
    case "InsufficientCredits":
      return e.scope
        ? f(402, "spend_cap_exceeded", `This API key's spend cap does not allow this: ${e.requested} credits asked (the estimate), ${Math.max(0, e.available)} left under the cap`, { available: e.available, requested: e.requested })
        : f(402, "insufficient_credits", `Not enough credits: ${e.requested} asked (the estimate), ${e.available} available`, { available: e.available, requested: e.requested })
    case "TurnInProgress":
      return f(409, "turn_in_progress", "A turn is still running: wait for it or cancel it", { turn_id: e.turnId })
    case "ChatNotFound":
    case "NotChatOwner":
      return f(404, "chat_not_found", "No such chat")
    case "ChatExists":
      return f(409, "chat_exists", "The chat already exists")
    case "TurnNotFound":
      return f(404, "turn_not_found", "No such turn")
    case "ConfirmationNotFound":
      return f(404, "confirmation_not_found", "No running turn waits for the answer to this call (answered, timed out, or the turn ended)", { call_id: e.callId })
    case "MessageNotFound":
      return f(404, "message_not_found", "No such message")
    case "ShareNotFound":
      return f(404, "share_not_found", "No such share")
    case "UserNotFound":
      return f(404, "user_not_found", "No such user")
    case "UserExists":
      return e.field === "username"
        ? f(409, "username_taken", "This username is taken", { field: "username" })
        : f(409, "email_taken", "An account with this email exists", { field: "email" })
    case "InviteInvalid":
      return f(403, "invite_invalid", "The invite code is unknown, used up or expired", { reason: e.reason })
    case "InvalidCredentials":
      return f(401, "invalid_credentials", "Wrong login or password")
    case "EmailNotVerified":
      return f(403, "email_not_verified", "Verify your email address first (POST /v1/auth/verify_email)")
    case "TotpRequired":
      return f(401, "totp_required", "Two-factor authentication is on: send totp_code (an authenticator or backup code)")
    case "InvalidTotp":
      return f(401, "invalid_totp", "Wrong or already used two-factor code")
    case "TotpState":
      return e.reason === "already_enabled"
        ? f(409, "totp_already_enabled", "Two-factor authentication is already on")
        : f(409, "totp_not_started", "Start with POST /v1/auth/2fa/setup")
    case "InvalidCode":
      return f(400, "invalid_code", "Wrong, expired or too often tried verification code", { reason: e.reason })
    case "InvalidRefreshToken":
      return e.reuse
        ? f(401, "refresh_token_reused", "This refresh token was already used: the session is revoked, sign in again")
        : f(401, "invalid_refresh_token", "Unknown, revoked or expired refresh token")
    case "PasskeyRefused":
      switch (e.reason) {
        case "unknown_credential":
          return f(401, "passkey_unknown", "This passkey is not registered (or was removed)")
        case "wrong_origin":
          return f(400, "passkey_wrong_origin", "The passkey was used on another site than this server's TROUPE_PUBLIC_URL")
        case "wrong_challenge":
          return f(400, "passkey_wrong_challenge", "The passkey signed another challenge than the one handed out")
        case "cloned":
          return f(401, "passkey_cloned", "The passkey's signature counter went backwards: a cloned authenticator is refused")
        case "invalid":
          return f(401, "passkey_invalid", "The passkey's signature or flags do not check out (user verification is required)")
      }
    case "IdentityTaken":
      return f(409, "oidc_identity_taken", "This identity at the provider is linked to another account")
    case "PasskeyExists":
      return f(409, "passkey_exists", "This passkey is registered already")
    case "PasskeyNotFound":
      return f(404, "passkey_not_found", "No such passkey")
    case "ApiKeyInvalid":
      return f(401, "invalid_api_key", "Unknown, revoked or expired API key", { reason: e.reason })
    case "ResetTokenInvalid":
      return e.reason === "unknown"
        ? f(400, "reset_token_invalid", "Unknown password reset link")
        : f(400, `reset_token_${e.reason}`, e.reason === "used" ? "This password reset link was used already" : "This password reset link has expired")
    case "ApiKeyNotFound":
      return f(404, "api_key_not_found", "No such API key")
    case "MateNotFound":
      return f(404, "mate_not_found", "No such mate")
    case "DefaultMate":
      return f(409, "default_mate", "The default mate cannot be deleted")
    case "LimitReached":
      return f(409, "limit_reached", `Limit reached: at most ${e.limit} ${e.what}`, { what: e.what, limit: e.limit })
    case "HoldNotFound":
    case "HoldNotActive":
    case "HoldClosed":
    case "HoldExceeded":
    case "KeyConflict":
      return f(409, "credit_conflict", "The credit operation conflicts with an earlier one")
    case "HandlerFailed":
      // the entity refused the message for good (see runtime/EntityGuard.ts): never retried
      return e.reason === "unstorable"
        ? f(400, "invalid_request", "A value in this request cannot be stored", { reason: "unstorable" })
        : f(500, "internal_error", "Internal error")
    case "SkillTimeout":
    case "SkillMemoryExceeded":
    case "SkillEgressDenied":
    case "SkillFailed":
    case "SkillUnavailable":
    case "InvalidInput":
    case "AppNotFound":
    case "SkillNotFound": {
      const d = SkillErrors.describe(e)
      return f(d.status, d.code, d.message, d.details)
    }
    case "DirectoryUnavailable":
    case "PersistenceError":
    case "MailboxFull":
    case "AlreadyProcessingMessage":
    case "EntityNotAssignedToRunner":
    case "RunnerUnavailable":
    case "RunnerNotRegistered":
    case "RpcClientError":
      return unavailable()
    case "MalformedMessage":
      return f(500, "internal_error", "Internal error")
  }
  // an error without a mapping is a compile error here
  const unmapped: never = e
  return unmapped
}

/** Map every typed error of an entity call to an `ApiFailure`. */
export const entity = <A, E extends EntityError | ApiFailure, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, ApiFailure, R> =>
  Effect.mapError(effect, (e: EntityError | ApiFailure) => (e._tag === "ApiFailure" ? e : fromEntity(e)))
