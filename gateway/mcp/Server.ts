/**
 * The MCP server at `/mcp` (Model Context Protocol, Streamable HTTP transport): every skill the
 * caller may invoke — installed apps' and first-party ones — is an MCP tool, called exactly like
 * `POST /v1/apps/{app}/skills/{skill}` (`invokeSkill`: the same scopes, spend cap, credit hold
 * and billing).
 *
 * Stateless: each POST builds a server for its authenticated caller and answers with JSON, so
 * any gateway answers any request (no session to pin). GET (a server-initiated stream) and
 * DELETE (ending a session) answer 405, which clients accept.
 *
 * Tools are named `<app>_<skill>` (app ids have no `_`, so the first `_` splits them), a name
 * every LLM provider's function-name rule accepts. A skill whose input schema is an object takes
 * the tool's arguments as its input; any other input schema is wrapped as `{input: <schema>}`
 * (MCP tools take objects). A refused or failed call is a tool result with `isError: true` whose
 * text starts with the REST error code (`insufficient_scope: …`, `spend_cap_exceeded: …`) and
 * whose `structuredContent` is the REST error body.
 */
import type * as Sharding from "@effect/cluster/Sharding"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Server as McpServer } from "@modelcontextprotocol/sdk/server/index.js"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError } from "@modelcontextprotocol/sdk/types.js"
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import { errorResponse } from "../../runtime/Http.ts"
import type { SkillDescription } from "../../skills/Skills.ts"
import { Skills } from "../../skills/Skills.ts"
import type { Principal } from "../Auth.ts"
import * as Auth from "../Auth.ts"
import { GatewayConfig } from "../Config.ts"
import { ApiFailure } from "../Errors.ts"
import { clientIp } from "../handlers/common.ts"
import { invokeSkill } from "../handlers/apps.ts"
import * as Policy from "../Policy.ts"
import { RateLimiter } from "../RateLimit.ts"
import type * as Tokens from "../Tokens.ts"

/** Where the MCP server is mounted. */
export const path = "/mcp"

/** A tool's name for a skill. */
export const toolName = (app: string, skill: string): string => `${app}_${skill}`

/** The app and skill a tool name stands for. */
const parseToolName = (name: string): { readonly app: string; readonly skill: string } | undefined => {
  const at = name.indexOf("_")
  return at > 0 && at < name.length - 1 ? { app: name.slice(0, at), skill: name.slice(at + 1) } : undefined
}

const isObjectSchema = (schema: Readonly<Record<string, unknown>>) => schema.type === "object"

/** A skill as an MCP tool. */
const toTool = (app: string, skill: SkillDescription): Tool => ({
  name: toolName(app, skill.name),
  title: skill.id,
  description: `${skill.description} (${skill.price})`,
  inputSchema: isObjectSchema(skill.input)
    ? { ...skill.input, type: "object" }
    : { type: "object", properties: { input: skill.input }, required: ["input"], additionalProperties: false },
  annotations: { readOnlyHint: skill.side_effects === "read" },
  _meta: { "troupe/skill": skill.id, "troupe/pricing": skill.pricing }
})

const failed = (f: ApiFailure): CallToolResult => ({
  isError: true,
  content: [{ type: "text", text: `${f.code}: ${f.message}` }],
  structuredContent: { error: { code: f.code, message: f.message, ...(f.details === undefined ? {} : { details: f.details }) } }
})

const succeeded = (out: { readonly result: unknown; readonly credits_charged: number }): CallToolResult => ({
  content: [{ type: "text", text: typeof out.result === "string" ? out.result : JSON.stringify(out.result) }],
  ...(typeof out.result === "object" && out.result !== null && !Array.isArray(out.result)
    ? { structuredContent: out.result as Record<string, unknown> }
    : {}),
  _meta: { "troupe/credits_charged": out.credits_charged }
})

type Services = Skills | Sharding.Sharding

/** An MCP server answering for one caller. */
const serverFor = (principal: Principal, runtime: Runtime.Runtime<Services>, version: string) => {
  const run = Runtime.runPromise(runtime)
  const server = new McpServer({ name: "troupe", version }, { capabilities: { tools: {} } })
  server.setRequestHandler(ListToolsRequestSchema, () =>
    run(Effect.gen(function*() {
      const apps = yield* (yield* Skills).list
      const tools = apps.flatMap((app) =>
        Policy.allows(principal, Policy.InvokeSkill(app.id)) ? app.skills.map((s) => toTool(app.id, s)) : []
      )
      return { tools }
    })))
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const target = parseToolName(request.params.name)
    const result = target && await run(Effect.gen(function*() {
      const found = yield* Effect.option((yield* Skills).describeSkill(target.app, target.skill))
      if (found._tag === "None") return undefined
      const args = request.params.arguments ?? {}
      const input = isObjectSchema(found.value.input) ? args : args.input
      return yield* invokeSkill(principal, { app: target.app, skill: target.skill, input }).pipe(
        Effect.map(succeeded),
        Effect.catchTag("ApiFailure", (f) => Effect.succeed(failed(f)))
      )
    }))
    if (!result) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`)
    return result
  })
  return server
}

const methodNotAllowed = HttpServerResponse.unsafeJson(
  { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed: this MCP server is stateless, send POST" }, id: null },
  { status: 405, headers: { allow: "POST" } }
)

/** The `/mcp` route: authenticate, then let the SDK's transport answer the JSON-RPC request. */
export const route = (version: string) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.method !== "POST") return methodNotAllowed
    const config = yield* GatewayConfig
    yield* (yield* RateLimiter).consume("ip", clientIp(request, config.trustProxy))
    const principal = yield* Auth.authenticate(request)
    yield* Policy.require(principal, Policy.ReadApps)
    const runtime = yield* Effect.runtime<Services>()
    const web = yield* HttpServerRequest.toWeb(request).pipe(
      Effect.mapError(() => new ApiFailure({ status: 400, code: "invalid_request", message: "Unreadable request" }))
    )
    const server = serverFor(principal, runtime, version)
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
      maxRequestBodySize: config.maxBodyBytes
    })
    return yield* Effect.acquireUseRelease(
      Effect.promise(() => server.connect(transport)),
      () => Effect.map(Effect.promise(() => transport.handleRequest(web)), HttpServerResponse.fromWeb),
      () => Effect.promise(() => server.close())
    )
  }).pipe(
    Effect.catchAll((e) =>
      e instanceof ApiFailure
        ? Effect.succeed(HttpServerResponse.setHeaders(errorResponse(e.status, e.code, e.message, e.details), e.headers ?? {}))
        : Effect.fail(e)
    )
  )

/** What the route needs. */
export type Requirements = Services | GatewayConfig | RateLimiter | Tokens.Tokens
