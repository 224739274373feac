/** `/v1/credits`: the balance and the ledger. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as Schema from "effect/Schema"
import { Authentication } from "../Auth.ts"
import { BadRequest, Forbidden, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Balance, Paging } from "./common.ts"

export const LedgerEntry = Schema.Struct({
  id: Schema.Number,
  key: Schema.String.annotations({ description: "The transaction's idempotency key (`<kind>:<account>:<hold or grant key>`): a hold's legs share it" }),
  kind: Schema.String.annotations({ description: "`grant`, `reverse`, `reserve`, `settle`, `release` or `expire`" }),
  bucket: Schema.Literal("available", "reserved"),
  amount: Schema.Number,
  reason: Schema.NullOr(Schema.String).annotations({
    description: "What the row is for: a grant's reason, or what a hold paid for (`skill weather.forecast`, `turn in chat <chat id>`, `model <model>`)"
  }),
  skill: Schema.NullOr(Schema.String).annotations({ description: "The skill a hold paid for (`<app>.<skill>`)" }),
  api_key_id: Schema.NullOr(Schema.String).annotations({ description: "The API key that spent (its id, as `GET /v1/api_keys` lists it)" }),
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
