/** `/v1/api_keys`: the signed-in user's API keys. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import * as Storable from "../../runtime/Storable.ts"
import { PlainText, Scope } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Id } from "./common.ts"

export const ApiKey = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  scopes: Schema.Array(Schema.String),
  expires_at: Schema.NullOr(Schema.Date),
  spend_cap: Schema.NullOr(Schema.Number),
  spent: Schema.NullOr(Schema.Number).annotations({
    description: "Credits used against `spend_cap` (charged plus held by running calls); null when the key has no cap"
  }),
  created_at: Schema.Date
}).annotations({ identifier: "ApiKey" })

export class ApiKeysGroup extends HttpApiGroup.make("api_keys")
  .add(
    HttpApiEndpoint.post("create", "/v1/api_keys")
      .setPayload(Schema.Struct({
        name: PlainText(80).pipe(Schema.minLength(1)),
        scopes: Schema.Array(Scope).pipe(Schema.minItems(1), Schema.maxItems(20)),
        expires_at: Schema.optional(Storable.DateTime),
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
