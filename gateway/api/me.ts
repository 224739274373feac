/** `/v1/me`: the signed-in user's profile, sessions, and deleting the account. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Email, PlainText, SettingsInput } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Conflict, Forbidden, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"

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
