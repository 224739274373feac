/** `/v1/apps`: apps and their skills, and invoking a skill. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { AppDescription } from "../../skills/Skills.ts"
import { Authentication } from "../Auth.ts"
import { BadGateway, BadRequest, Forbidden, GatewayTimeout, NotFound, PaymentRequired, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Id } from "./common.ts"

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
