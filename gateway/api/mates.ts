/** `/v1/mates`: the user's AI team-mates. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import { AllowedSkills, PlainText } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Id } from "./common.ts"

export const Mate = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  system_prompt: Schema.String,
  model: Schema.String,
  allowed_skills: Schema.Array(Schema.String),
  is_default: Schema.Boolean,
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotations({ identifier: "Mate" })

const MateName = PlainText(80).pipe(Schema.minLength(1))
const SystemPrompt = PlainText(20_000)
const Model = PlainText(100).pipe(Schema.minLength(1))

export class MatesGroup extends HttpApiGroup.make("mates")
  .add(HttpApiEndpoint.get("list", "/v1/mates").addSuccess(Schema.Struct({ mates: Schema.Array(Mate) })))
  .add(
    HttpApiEndpoint.post("create", "/v1/mates")
      .setPayload(Schema.Struct({ name: MateName, system_prompt: Schema.optional(SystemPrompt), model: Schema.optional(Model), allowed_skills: Schema.optional(AllowedSkills) }))
      .addSuccess(Mate, { status: 201 })
      .addError(Conflict)
  )
  .add(HttpApiEndpoint.get("get", "/v1/mates/:id").setPath(Schema.Struct({ id: Id })).addSuccess(Mate))
  .add(
    HttpApiEndpoint.patch("update", "/v1/mates/:id").setPath(Schema.Struct({ id: Id }))
      .setPayload(Schema.Struct({ name: Schema.optional(MateName), system_prompt: Schema.optional(SystemPrompt), model: Schema.optional(Model), allowed_skills: Schema.optional(AllowedSkills) }))
      .addSuccess(Mate)
  )
  .add(HttpApiEndpoint.del("delete", "/v1/mates/:id").setPath(Schema.Struct({ id: Id })).addSuccess(HttpApiSchema.Empty(204)).addError(Conflict))
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}
