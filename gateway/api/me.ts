/** `/v1/me`: the signed-in user's profile, sessions, and deleting the account. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { PlainText, SettingsInput } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Forbidden, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"

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
