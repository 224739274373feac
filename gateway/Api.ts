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
import * as JSONSchema from "effect/JSONSchema"
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
import { ErrorBody } from "./Errors.ts"

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
 * A one-line summary of each operation (by operation id), or `OpenApi.Summary` on the endpoint:
 * `gateway/openapi.test.ts` fails for an operation without one.
 */
const summaries: Readonly<Record<string, string>> = {
  "auth.signup": "Create an account",
  "auth.verifyEmail": "Verify the email address with the mailed code",
  "auth.resendVerification": "Mail a new verification code",
  "auth.login": "Sign in",
  "auth.refresh": "Rotate the refresh token",
  "auth.passwordReset": "Ask for a password reset link",
  "auth.passwordResetConfirm": "Set a new password with a reset link",
  "auth.logout": "Sign out this session",
  "auth.logoutAll": "Sign out every session",
  "auth.totpSetup": "Start two-factor authentication",
  "auth.totpConfirm": "Turn on two-factor authentication",
  "auth.passkeyOptions": "Start a passkey sign-in",
  "auth.passkeyLogin": "Sign in with a passkey",
  "auth.oidcProviders": "The single sign-on providers",
  "auth.oidcStart": "Start a single sign-on login",
  "auth.oidcCallback": "Finish a single sign-on login (the provider's redirect)",
  "me.get": "Your profile",
  "me.update": "Change your profile and settings",
  "me.delete": "Delete your account",
  "me.changeEmail": "Change your email address",
  "me.confirmEmail": "Confirm a new email address",
  "me.sessions": "Your sessions",
  "me.passkeys": "Your passkeys",
  "me.addPasskey": "Register a passkey",
  "me.passkeyRegistrationOptions": "Start registering a passkey",
  "me.removePasskey": "Remove a passkey",
  "api_keys.create": "Create an API key",
  "api_keys.list": "Your API keys",
  "api_keys.revoke": "Revoke an API key",
  "chats.create": "Create a chat",
  "chats.list": "Your chats",
  "chats.get": "A chat with its messages",
  "chats.delete": "Delete a chat",
  "chats.rename": "Rename a chat",
  "chats.post": "Post a message (starts the mate's turn)",
  "chats.events": "Follow a chat's events (Server-Sent Events)",
  "chats.cancel": "Cancel the running turn",
  "chats.confirm": "Approve or decline a write skill call",
  "chats.deleteMessage": "Delete a message",
  "chats.share": "Share a read-only snapshot",
  "shares.get": "Read a shared snapshot (encrypted)",
  "mates.list": "Your mates",
  "mates.create": "Create a mate",
  "mates.get": "A mate",
  "mates.update": "Change a mate",
  "mates.delete": "Delete a mate",
  "credits.balance": "Your credit balance",
  "credits.ledger": "Your credit ledger: each row's reason, and the skill and API key a charge was for",
  "admin.createInvite": "Create an invite code (admin)",
  "admin.invites": "Invite codes (admin)",
  "admin.users": "Users (admin)",
  "admin.grant": "Grant credits (admin)",
  "admin.health": "This server's health (admin)",
  "admin.cluster": "The cluster's runners (admin)",
  "apps.list": "Apps and their skills",
  "apps.get": "An app and its skills",
  "apps.invoke": "Invoke a skill",
  "llm.providers": "LLM providers and their health (admin)",
  "llm.prices": "Model prices (admin)",
  "llm.setPrice": "Set a model's price (admin)",
  "llm.removePrice": "Reset a model's price (admin)",
  "setup.get": "How this server admits people",
  "openai.models": "Mates as models (OpenAI-compatible)",
  "openai.model": "A mate as a model (OpenAI-compatible)",
  "openai.completions": "Chat completion with a mate (OpenAI-compatible)",
  "store.list": "The app store's catalog",
  "store.publish": "Publish an app version",
  "store.get": "An app in the store, with its versions",
  "store.trust": "Trust a publisher key (admin)",
  "store.publishers": "Trusted publisher keys (admin)",
  "store.untrust": "Stop trusting a publisher key (admin)",
  "store.grantPublisher": "Give a user the publisher role (admin)",
  "store.revokePublisher": "Take the publisher role (admin)",
  "store.installs": "Installed apps (admin)",
  "store.install": "Install an app version (admin)",
  "store.upgrade": "Upgrade or roll back an app (admin)",
  "store.upgradeDiff": "What an upgrade changes (admin)",
  "store.approve": "Approve an upgrade (admin)",
  "store.uninstall": "Uninstall an app (admin)",
  "store.configure": "Set an app's config and secrets (admin)",
  "store.sync": "Index versions pushed to the registry (admin)"
}

type Operation = { operationId?: string; summary?: string }

/** Add the summaries above to operations that have none (an endpoint's own `OpenApi.Summary` wins). */
const addSummaries = (spec: Record<string, unknown>): Record<string, unknown> => {
  for (const item of Object.values((spec.paths ?? {}) as Record<string, Record<string, unknown>>)) {
    for (const op of Object.values(item)) {
      const o = op as Operation
      if (typeof op === "object" && op !== null && o.operationId && !o.summary && summaries[o.operationId]) o.summary = summaries[o.operationId]
    }
  }
  return spec
}

const errorRef = { $ref: "#/components/schemas/ErrorBody" }
const errors = (...statuses: ReadonlyArray<number>) =>
  Object.fromEntries(statuses.map((s) => [String(s), { description: "Error", content: { "application/json": { schema: errorRef } } }]))
const query = (name: string, description: string, schema: Record<string, unknown>, required = false) => ({ name, in: "query", required, description, schema })
const url = query("url", "The absolute http(s) URL to fetch", { type: "string", maxLength: 4096 }, true)
const refresh = query("refresh", "`true`: fetch again instead of answering from the cache", { type: "boolean" })

/**
 * The preview service's routes (`preview/Routes.ts`; on the main port with `troupe start`, or
 * `troupe preview` on its own port): plain routes outside the schema-first API, described here.
 */
const previewPaths = {
  "/api/v1/image": {
    get: {
      operationId: "preview.image",
      tags: ["preview"],
      summary: "A remote image, resized and re-encoded",
      description: "Fetch an image, resize it within the box keeping the ratio (never upscales; `0` = no limit), strip metadata. See preview/README.md.",
      parameters: [
        url,
        query("max_width", "Box width (0-16384)", { type: "integer", minimum: 0, maximum: 16384 }),
        query("max_height", "Box height (0-16384)", { type: "integer", minimum: 0, maximum: 16384 }),
        query("quality", "Encoder quality (1-100, default 85)", { type: "integer", minimum: 1, maximum: 100 }),
        query("format", "Output format (default webp)", { type: "string", enum: ["webp", "jpeg", "png"] }),
        refresh
      ],
      responses: {
        "200": { description: "The image", content: { "image/webp": {}, "image/jpeg": {}, "image/png": {} } },
        "304": { description: "Not modified (If-None-Match)" },
        ...errors(400, 401, 403, 413, 422, 429, 502, 503, 504)
      }
    }
  },
  "/api/v1/favicon": {
    get: {
      operationId: "preview.favicon",
      tags: ["preview"],
      summary: "A page's icon as PNG",
      description: "The page's best icon (apple-touch > PNG > ICO, then /favicon.ico), re-encoded as PNG within `size`×`size`.",
      parameters: [url, query("size", "Box size (16-512, default 128)", { type: "integer", minimum: 16, maximum: 512 }), refresh],
      responses: {
        "200": { description: "The icon", content: { "image/png": {}, "image/x-icon": {} } },
        "304": { description: "Not modified (If-None-Match)" },
        ...errors(400, 401, 403, 413, 422, 429, 502, 503, 504)
      }
    }
  },
  "/api/v1/metadata": {
    get: {
      operationId: "preview.metadata",
      tags: ["preview"],
      summary: "A page's metadata (title, description, image …)",
      parameters: [url, refresh],
      responses: { "200": { $ref: "#/components/responses/PreviewMetadata" }, "304": { description: "Not modified (If-None-Match)" }, ...errors(400, 401, 403, 413, 422, 429, 502, 503, 504) }
    },
    post: {
      operationId: "preview.metadataPost",
      tags: ["preview"],
      summary: "A page's metadata (URL in the body)",
      requestBody: {
        required: true,
        content: { "application/json": { schema: { type: "object", required: ["url"], properties: { url: { type: "string", maxLength: 4096 }, refresh: { type: "boolean" } } } } }
      },
      responses: { "200": { $ref: "#/components/responses/PreviewMetadata" }, ...errors(400, 401, 403, 413, 422, 429, 502, 503, 504) }
    }
  }
}

const nullableString = { type: ["string", "null"] }
const previewMetadata = {
  description: "The page's metadata: og:* > twitter:* > <title>/<meta> > JSON-LD",
  content: {
    "application/json": {
      schema: {
        type: "object",
        required: ["url", "title", "description", "image", "favicon", "site_name", "lang", "type"],
        properties: {
          url: { type: "string" },
          title: nullableString,
          description: nullableString,
          image: nullableString,
          favicon: nullableString,
          site_name: nullableString,
          lang: nullableString,
          type: nullableString
        }
      }
    }
  }
}

/**
 * The document as served: decoding errors answer with our error body (see Server.ts), not the
 * library's `HttpApiDecodeError`, and `ErrorBody` (which every error response references) is
 * defined; summaries; the preview routes.
 */
const replaceDecodeError = (spec: Record<string, unknown>): Record<string, unknown> => {
  const text = JSON.stringify(spec).replaceAll("#/components/schemas/HttpApiDecodeError", "#/components/schemas/ErrorBody")
  const out = JSON.parse(text) as { paths?: Record<string, unknown>; components?: { schemas?: Record<string, unknown>; responses?: Record<string, unknown> } }
  const components = (out.components ??= {})
  const schemas = (components.schemas ??= {})
  delete schemas["HttpApiDecodeError"]
  // the schema has an identifier, so `make` puts it in `$defs`
  const made = JSONSchema.make(ErrorBody) as { $defs?: Record<string, unknown> }
  schemas["ErrorBody"] = made.$defs?.["ErrorBody"] ?? made
  components.responses = { ...components.responses, PreviewMetadata: previewMetadata }
  out.paths = { ...out.paths, ...previewPaths }
  return addSummaries(out)
}
