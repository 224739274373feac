/**
 * The public API, schema first: the groups of `api/`, one module each (its routes, their input
 * and output schemas and errors), assembled here. The OpenAPI document (`GET /v1/openapi.json`)
 * and the docs page (`/docs`) are generated from it; the handlers live in `handlers/`. Field
 * names are snake_case; times are ISO 8601 strings.
 *
 * A new group: define it in `api/<group>.ts`, add it below, and its handlers in
 * `handlers/<group>.ts` (listed in `handlers/index.ts`).
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as OpenApi from "@effect/platform/OpenApi"
import { AdminGroup } from "./api/admin.ts"
import { ApiKeysGroup } from "./api/api-keys.ts"
import { AppsGroup } from "./api/apps.ts"
import { AuthGroup } from "./api/auth.ts"
import { ChatsGroup, SharesGroup } from "./api/chats.ts"
import { CreditsGroup } from "./api/credits.ts"
import { LlmGroup } from "./api/llm.ts"
import { OpenAiGroup } from "./openai/api.ts"
import { MatesGroup } from "./api/mates.ts"
import { MeGroup } from "./api/me.ts"
import { CreditPackagesGroup, PaymentsGroup, PaymentWebhooksGroup } from "./api/payments.ts"
import { SetupGroup } from "./api/setup.ts"
import { StoreGroup } from "./api/store.ts"

/** The whole API. */
export class TroupeApi extends HttpApi.make("troupe")
  .add(AuthGroup)
  .add(MeGroup)
  .add(ApiKeysGroup)
  .add(ChatsGroup)
  .add(SharesGroup)
  .add(MatesGroup)
  .add(CreditsGroup)
  .add(AdminGroup)
  .add(AppsGroup)
  .add(CreditPackagesGroup)
  .add(PaymentsGroup)
  .add(PaymentWebhooksGroup)
  .add(LlmGroup)
  .add(SetupGroup)
  .add(OpenAiGroup)
  .add(StoreGroup)
  .annotate(OpenApi.Title, "Troupe API")
  .annotate(OpenApi.Version, "1")
  .annotate(OpenApi.Description, "Authenticate with `Authorization: Bearer <access token or API key>`. Errors are `{\"error\":{\"code\",\"message\",\"details?\"}}`. See docs/api.md.")
  .annotate(OpenApi.Transform, (spec) => replaceDecodeError(spec))
{}

/**
 * Requests that fail decoding answer with our error body (see Server.ts), not the library's
 * `HttpApiDecodeError`; make the document say so.
 */
const replaceDecodeError = (spec: Record<string, unknown>): Record<string, unknown> => {
  const text = JSON.stringify(spec).replaceAll("#/components/schemas/HttpApiDecodeError", "#/components/schemas/ErrorBody")
  const out = JSON.parse(text) as { components?: { schemas?: Record<string, unknown> } }
  if (out.components?.schemas) delete out.components.schemas["HttpApiDecodeError"]
  return out
}
