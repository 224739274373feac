/**
 * The OpenAI-compatible API with the official `openai` npm client, unchanged, against the real
 * gateway on the embedded default with a scripted provider over real HTTP: models = the caller's
 * mates, a non-streaming and a streaming completion (with usage), a round trip of the caller's
 * own tool, the mate's skills run server-side (reported in usage), and errors in OpenAI's shape
 * (unknown model, bad key, missing scope, spend cap).
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Entities from "../../entities/index.ts"
import * as Ai from "../../skills/ai/App.ts"
import * as Llm from "../../skills/ai/Llm.ts"
import * as Settings from "../../skills/ai/Settings.ts"
import * as Scripted from "../../skills/ai/testing/ScriptedServer.ts"
import { onboard } from "../testing/flows.ts"
import { initialInvite, layerSkills, request, startServer } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"

let provider: Scripted.ScriptedServer
let server: TestServer
let client: OpenAI
let session = ""

const key = async (body: Record<string, unknown>) => {
  const created = await request(server, "POST", "/v1/api_keys", { token: session, body: { name: "sdk", ...body } })
  expect(created.status, JSON.stringify(created.body)).toBe(201)
  return created.body.key as string
}

beforeAll(async () => {
  provider = await Scripted.start()
  const settings = Settings.make({
    providers: [Settings.providerOf({ name: "scripted", base_url: provider.baseUrl, models: [{ name: "m", context_window: 8192, max_output_tokens: 256 }] }, Option.none())]
  })
  server = await startServer({
    settings: { signup: { _tag: "Open" }, startingCredits: 10_000 },
    entities: Ai.layerEntities(Entities.layerWith).pipe(Layer.provide(Layer.merge(layerSkills, Llm.layer(settings).pipe(Layer.provide(NodeHttpClient.layerUndici)))))
  })
  session = (await onboard(server, "dev", initialInvite(server.dataDir))).access
  const mate = await request(server, "POST", "/v1/mates", { token: session, body: { name: "Number Cruncher", system_prompt: "You calculate.", allowed_skills: ["math"] } })
  expect(mate.status).toBe(201)
  client = new OpenAI({ apiKey: await key({ scopes: ["chats"] }), baseURL: `${server.url}/v1`, maxRetries: 0 })
}, 180_000)
afterAll(async () => {
  await server?.close()
  await provider?.close()
})

describe("the OpenAI-compatible API with the official client", () => {
  it("lists the caller's mates as models", async () => {
    const models = await client.models.list()
    expect(models.data.map((m) => m.id).sort()).toEqual(["number-cruncher", "troupe"])
    expect((await client.models.retrieve("number-cruncher")).id).toBe("number-cruncher")
  })

  it("answers a completion without streaming", async () => {
    provider.respond(() => ({ ...Scripted.text("Hello from the mate."), usage: { prompt_tokens: 12, completion_tokens: 5 } }))
    const completion = await client.chat.completions.create({
      model: "troupe",
      messages: [{ role: "system", content: "Be kind." }, { role: "user", content: "Hello?" }],
      temperature: 0.2,
      max_tokens: 50
    })
    expect(completion.object).toBe("chat.completion")
    expect(completion.choices[0]!.message.content).toBe("Hello from the mate.")
    expect(completion.choices[0]!.finish_reason).toBe("stop")
    expect(completion.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 })
    const sent = provider.requests.at(-1)!.body
    expect(sent.messages).toEqual([
      { role: "system", content: "You are a helpful team-mate." },
      { role: "system", content: "Be kind." },
      { role: "user", content: "Hello?" }
    ])
    expect(sent.temperature).toBe(0.2)
    expect(sent.max_tokens).toBe(50)
  })

  it("streams a completion with usage at the end", async () => {
    provider.respond(() => Scripted.text("One two three four.", { delayMs: 10 }))
    const stream = await client.chat.completions.create({
      model: "troupe",
      messages: [{ role: "user", content: "Count" }],
      stream: true,
      stream_options: { include_usage: true }
    })
    const parts: Array<string> = []
    let finish: string | null = null
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) {
      const choice = chunk.choices[0]
      if (choice?.delta.content) parts.push(choice.delta.content)
      if (choice?.finish_reason) finish = choice.finish_reason
      if (chunk.usage) usage = chunk.usage
    }
    expect(parts.join("")).toBe("One two three four.")
    expect(parts.length).toBeGreaterThan(1)
    expect(finish).toBe("stop")
    expect(usage?.completion_tokens).toBe(4)
  })

  it("hands the caller's own tool calls back and continues with their results", async () => {
    provider.respond((r) =>
      r.body.messages.at(-1).role === "tool"
        ? Scripted.text(`It is ${JSON.parse(r.body.messages.at(-1).content).celsius} degrees in Oslo.`)
        : Scripted.toolCalls([{ id: "call_w", name: "get_weather", arguments: { city: "Oslo" } }]))
    const tools: Array<OpenAI.ChatCompletionTool> = [{
      type: "function",
      function: { name: "get_weather", description: "Current weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }
    }]
    const messages: Array<OpenAI.ChatCompletionMessageParam> = [{ role: "user", content: "Weather in Oslo?" }]
    const first = await client.chat.completions.create({ model: "troupe", messages, tools })
    const call = first.choices[0]!.message.tool_calls![0]!
    expect(first.choices[0]!.finish_reason).toBe("tool_calls")
    expect(call).toMatchObject({ id: "call_w", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } })
    messages.push(first.choices[0]!.message, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ celsius: 4 }) })
    const second = await client.chat.completions.create({ model: "troupe", messages, tools })
    expect(second.choices[0]!.message.content).toBe("It is 4 degrees in Oslo.")
    const sent = provider.requests.at(-1)!.body.messages
    expect(sent.slice(-2)).toEqual([
      { role: "assistant", content: null, tool_calls: [{ id: "call_w", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }] },
      { role: "tool", tool_call_id: "call_w", content: "{\"celsius\":4}" }
    ])
    // streaming hands them back too
    provider.respond(() => Scripted.toolCalls([{ id: "call_s", name: "get_weather", arguments: { city: "Bergen" } }]))
    const stream = await client.chat.completions.create({ model: "troupe", messages: [{ role: "user", content: "Bergen?" }], tools, stream: true })
    const streamed: Array<OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall> = []
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.delta.tool_calls ?? []))
    expect(streamed).toEqual([expect.objectContaining({ index: 0, id: "call_s", function: { name: "get_weather", arguments: "{\"city\":\"Bergen\"}" } })])
  })

  it("runs the mate's skills server-side and reports them in usage", async () => {
    provider.respond((r) =>
      r.body.messages.at(-1).role === "tool"
        ? Scripted.text(`The answer is ${JSON.parse(r.body.messages.at(-1).content).result}.`)
        : Scripted.toolCalls([{ name: "math__calculate", arguments: { expression: "6*7" } }]))
    const completion = await client.chat.completions.create({ model: "number-cruncher", messages: [{ role: "user", content: "6 times 7?" }] })
    expect(completion.choices[0]!.message.content).toBe("The answer is 42.")
    expect(completion.choices[0]!.message.tool_calls).toBeUndefined()
    expect((completion.usage as unknown as { troupe: unknown }).troupe).toMatchObject({ skill_calls: [{ skill: "math.calculate", ok: true }] })
    expect(provider.requests.at(-2)!.body.messages[0]).toEqual({ role: "system", content: "You calculate." })
  })

  it("fails in OpenAI's error shape", async () => {
    const unknown = await client.chat.completions.create({ model: "nobody", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e)
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError)
    expect(unknown).toMatchObject({ status: 404, code: "model_not_found", param: "model", type: "invalid_request_error" })

    const badKey = new OpenAI({ apiKey: "trp_not_a_key", baseURL: `${server.url}/v1`, maxRetries: 0 })
    const denied = await badKey.models.list().catch((e: unknown) => e)
    expect(denied).toBeInstanceOf(OpenAI.AuthenticationError)
    expect(denied).toMatchObject({ status: 401, type: "authentication_error" })

    const readOnly = new OpenAI({ apiKey: await key({ scopes: ["read"] }), baseURL: `${server.url}/v1`, maxRetries: 0 })
    const scoped = await readOnly.chat.completions.create({ model: "troupe", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e)
    expect(scoped).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(scoped).toMatchObject({ status: 403, code: "insufficient_scope" })

    const capped = new OpenAI({ apiKey: await key({ scopes: ["chats"], spend_cap: 1 }), baseURL: `${server.url}/v1`, maxRetries: 0 })
    provider.respond(() => Scripted.text("never"))
    const poor = await capped.chat.completions.create({ model: "troupe", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e)
    expect(poor).toBeInstanceOf(OpenAI.APIError)
    expect(poor).toMatchObject({ status: 402, code: "spend_cap_exceeded", type: "insufficient_quota" })

    const invalid = await client.chat.completions.create({ model: "troupe", messages: [] }).catch((e: unknown) => e)
    expect(invalid).toBeInstanceOf(OpenAI.BadRequestError)
    expect(invalid).toMatchObject({ status: 400, param: "messages" })
  })
})
