/**
 * The OpenAI-compatible API: `GET /v1/models` (each mate the caller can use is a model) and
 * `POST /v1/chat/completions` (streaming or not). Bodies and errors follow OpenAI's shapes
 * (`gateway/openai/wire.ts`), so the official clients work unchanged.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Authentication } from "../Auth.ts"
import { BadRequest, Forbidden, NotFound, PaymentRequired, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"

const Model = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("model"),
  created: Schema.Number,
  owned_by: Schema.String
}).annotations({ identifier: "OpenAiModel", description: "A mate as a model: `id` is a slug of its name, unique per user" })

export class OpenAiGroup extends HttpApiGroup.make("openai")
  .add(
    HttpApiEndpoint.get("models", "/v1/models")
      .addSuccess(Schema.Struct({ object: Schema.Literal("list"), data: Schema.Array(Model) }))
      .annotate(OpenApi.Description, "OpenAI-compatible: the caller's mates as models.")
  )
  .add(
    HttpApiEndpoint.get("model", "/v1/models/:model")
      .setPath(Schema.Struct({ model: Schema.String }))
      .addSuccess(Model)
  )
  .add(
    HttpApiEndpoint.post("completions", "/v1/chat/completions")
      .setPayload(Schema.Unknown.annotations({ description: "An OpenAI Chat Completions request (`model` = a mate's model id)" }))
      .addSuccess(Schema.Unknown.annotations({ description: "A `chat.completion`, or with `stream: true` a `text/event-stream` of `chat.completion.chunk` frames ending with `data: [DONE]`" }))
      .annotate(OpenApi.Description, "OpenAI-compatible chat completion with a mate: its system prompt and skills (run server-side, reported in `usage.troupe`); the caller's `tools` come back as `tool_calls`. Needs the `chats` scope; the caller's credits (and API key spend cap) pay.")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(PaymentRequired)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}
