/** Every group's handlers: a new group of `Api.ts` adds its `handlers/<group>.ts` layer here. */
import * as Layer from "effect/Layer"
import * as Admin from "./admin.ts"
import * as ApiKeys from "./api-keys.ts"
import * as Apps from "./apps.ts"
import * as Auth from "./auth.ts"
import * as Chats from "./chats.ts"
import * as Credits from "./credits.ts"
import * as Llm from "./llm.ts"
import * as OpenAi from "../openai/handlers.ts"
import * as Mates from "./mates.ts"
import * as Me from "./me.ts"
import * as Payments from "./payments.ts"
import * as Setup from "./setup.ts"
import * as Store from "./store.ts"

/** The handlers of every group of `TroupeApi`. */
export const layer = Layer.mergeAll(
  Auth.layer,
  Me.layer,
  ApiKeys.layer,
  Chats.layer,
  Mates.layer,
  Credits.layer,
  Admin.layer,
  Apps.layer,
  Payments.layer,
  Llm.layer,
  Setup.layer,
  OpenAi.layer,
  Store.layer
)
