/** `/v1/credits`: the balance and the ledger. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as Schema from "effect/Schema"
import { Authentication } from "../Auth.ts"
import { BadRequest, Forbidden, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Balance, Paging } from "./common.ts"

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
