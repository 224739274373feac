/** `/v1/admin/providers` and `/v1/admin/models/*`: LLM providers and their health, the model price table (admin sessions only). */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Rate } from "../../skills/ai/Prices.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"

const Health = Schema.Struct({
  state: Schema.Literal("closed", "open", "half_open"),
  consecutive_failures: Schema.Number,
  retry_at: Schema.NullOr(Schema.String),
  last_error: Schema.NullOr(Schema.String),
  last_failure_at: Schema.NullOr(Schema.String),
  last_success_at: Schema.NullOr(Schema.String),
  successes: Schema.Number,
  failures: Schema.Number
}).annotations({ identifier: "ProviderHealth" })

export const Provider = Schema.Struct({
  name: Schema.String,
  base_url: Schema.String,
  api_key_env: Schema.NullOr(Schema.String),
  api_key_set: Schema.Boolean,
  priority: Schema.Number,
  source: Schema.Literal("providers", "short", "probe"),
  models: Schema.Array(Schema.Struct({ name: Schema.String, family: Schema.String, context_window: Schema.Number, max_output_tokens: Schema.Number })),
  timeouts: Schema.Struct({ first_token_ms: Schema.Number, idle_ms: Schema.Number, total_ms: Schema.Number }),
  health: Health,
  runners: Schema.Array(Schema.extend(Schema.Struct({ instance: Schema.String, reported_at: Schema.String }), Health))
}).annotations({ identifier: "LlmProvider", description: "A provider and its circuit breaker as the processes running turns report it (the newest report in `health`, each process in `runners`). API keys are never shown." })

export const ModelPrice = Schema.Struct({
  model: Schema.String,
  input: Schema.Number,
  output: Schema.Number,
  updated_at: Schema.Date
}).annotations({ identifier: "ModelPrice", description: "Credits per 1,000 input and output tokens" })

const ModelPath = Schema.Struct({ model: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200), Schema.pattern(/^[\w.:/@+-]+$/, { message: () => "must be a model name" })) })

export class LlmGroup extends HttpApiGroup.make("llm")
  .add(
    HttpApiEndpoint.get("providers", "/v1/admin/providers")
      .addSuccess(Schema.Struct({ summary: Schema.String, providers: Schema.Array(Provider) }))
      .annotate(OpenApi.Description, "The configured LLM providers with their health (circuit breaker state). Empty when no process running turns has a provider.")
  )
  .add(
    HttpApiEndpoint.get("prices", "/v1/admin/models/prices")
      .addSuccess(Schema.Struct({ default: Schema.Struct({ input: Schema.Number, output: Schema.Number }), prices: Schema.Array(ModelPrice) }))
  )
  .add(
    HttpApiEndpoint.put("setPrice", "/v1/admin/models/:model/price")
      .setPath(ModelPath)
      .setPayload(Schema.Struct({ input: Rate, output: Rate }))
      .addSuccess(ModelPrice)
      .annotate(OpenApi.Description, "Set a model's price in credits per 1,000 input and output tokens (a name with `/` is sent URL-encoded). Applies to turns on every process within 5 seconds.")
  )
  .add(
    HttpApiEndpoint.del("removePrice", "/v1/admin/models/:model/price")
      .setPath(ModelPath)
      .addSuccess(HttpApiSchema.Empty(204))
      .addError(NotFound)
      .annotate(OpenApi.Description, "Back to the default price (TROUPE_LLM_DEFAULT_PRICE).")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}
