/** `/v1/me`: the signed-in user's profile, sessions, and deleting the account. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { AttestationJson, CredentialId, Email, PlainText, SettingsInput } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { PasskeyOptions } from "./auth.ts"

/** A passkey as listed. */
export const Passkey = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  device_type: Schema.String,
  backed_up: Schema.Boolean,
  transports: Schema.Array(Schema.String),
  created_at: Schema.Date,
  last_used_at: Schema.NullOr(Schema.Date)
}).annotations({ identifier: "Passkey" })

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

export class MeGroup extends HttpApiGroup.make("me")
  .add(HttpApiEndpoint.get("get", "/v1/me").addSuccess(Me))
  .add(
    HttpApiEndpoint.patch("update", "/v1/me")
      .setPayload(Schema.Struct({ display_name: Schema.optional(PlainText(80)), settings: Schema.optional(SettingsInput) }))
      .addSuccess(Me)
  )
  .add(HttpApiEndpoint.del("delete", "/v1/me").addSuccess(HttpApiSchema.Empty(204)).annotate(OpenApi.Description, "Delete the account: every chat is crypto-shredded."))
  .add(
    HttpApiEndpoint.post("changeEmail", "/v1/me/email")
      .setPayload(Schema.Struct({ email: Email, password: PlainText(256) }))
      .addSuccess(Schema.Struct({ pending_email: Schema.String, confirmation: Schema.Literal("sent") }), { status: 202 })
      .addError(Conflict)
      .annotate(OpenApi.Description, "Change the e-mail address: a 6-digit code is mailed to the new address; the change takes effect with POST /v1/me/email/confirm, and the old address is told. 401 `invalid_credentials` for a wrong password, 409 `email_taken`.")
  )
  .add(
    HttpApiEndpoint.post("confirmEmail", "/v1/me/email/confirm")
      .setPayload(Schema.Struct({ code: Schema.String.pipe(Schema.pattern(/^\d{6}$/, { message: () => "must be 6 digits" })) }))
      .addSuccess(Me)
      .addError(Conflict)
      .annotate(OpenApi.Description, "Confirm the new e-mail address with the mailed code: it takes effect now. 400 `invalid_code` (reason wrong, expired, too_many_attempts, none).")
  )
  .add(HttpApiEndpoint.get("passkeys", "/v1/me/passkeys").addSuccess(Schema.Struct({ passkeys: Schema.Array(Passkey) })))
  .add(
    HttpApiEndpoint.post("passkeyRegistrationOptions", "/v1/me/passkeys/options")
      .addSuccess(PasskeyOptions)
      .addError(Conflict)
      .annotate(OpenApi.Description, "Options for `navigator.credentials.create()` (a discoverable credential; the account's passkeys excluded) and the id of their challenge (good once, 5 minutes).")
  )
  .add(
    HttpApiEndpoint.post("addPasskey", "/v1/me/passkeys")
      .setPayload(Schema.Struct({ challenge_id: PlainText(64).pipe(Schema.minLength(1)), name: Schema.optional(PlainText(80)), response: AttestationJson }))
      .addSuccess(Passkey, { status: 201 })
      .addError(Conflict)
      .annotate(OpenApi.Description, "Register a passkey (attestation `none` is enough). At most 20 per account. 400 `passkey_challenge_used`, `passkey_challenge_unknown`, `passkey_wrong_origin`, `passkey_invalid`; 409 `passkey_exists`.")
  )
  .add(
    HttpApiEndpoint.del("removePasskey", "/v1/me/passkeys/:id")
      .setPath(Schema.Struct({ id: CredentialId }))
      .addSuccess(HttpApiSchema.Empty(204))
      .addError(NotFound)
  )
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
