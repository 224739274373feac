/** `GET /v1/setup`: what a page needs to know before anyone signs in (no authentication). */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { TooManyRequests, Unavailable } from "../Errors.ts"

export const ServerSetup = Schema.Struct({
  /** Who may sign up (`TROUPE_SIGNUP`). */
  signup: Schema.Literal("invite_only", "open", "domains"),
  /** No administrator yet: the initial admin invite waits to be used. */
  needs_admin: Schema.Boolean,
  /** Where that invite is kept on the server (only while `needs_admin`). */
  initial_invite_file: Schema.NullOr(Schema.String),
  /** How verification codes travel: mailed over SMTP, or written to the outbox folder. */
  mail: Schema.Literal("smtp", "outbox"),
  /** The outbox folder (only while `needs_admin`, for the operator setting the server up). */
  outbox_dir: Schema.NullOr(Schema.String)
}).annotations({ identifier: "ServerSetup" })

export class SetupGroup extends HttpApiGroup.make("setup")
  .add(
    HttpApiEndpoint.get("get", "/v1/setup")
      .addSuccess(ServerSetup)
      .annotate(OpenApi.Description, "How this server admits people: the signup policy, whether it still waits for its first administrator (and where the initial admin invite is kept), and whether codes are mailed.")
  )
  .addError(TooManyRequests)
  .addError(Unavailable)
{}
