/**
 * One OpenAI-compatible endpoint, against the scripted server over real HTTP and SSE: streamed
 * text, tool calls assembled from fragments split across chunks, the usage the server reports,
 * error statuses as typed errors, an error in the middle of a stream, the `LanguageModel` view —
 * each through the part stream and through `push` (the turn's path), which must agree.
 */
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as ChatCompletions from "./ChatCompletions.ts"
import * as Scripted from "./testing/ScriptedServer.ts"

let server: Scripted.ScriptedServer
beforeAll(async () => {
  server = await Scripted.start({ apiKey: "sk-test" })
})
afterAll(() => server.close())

type Mode = "stream" | "push"

/** The answer's parts, read the given way; `seen` gets each as it comes. */
const read = (client: ChatCompletions.Client, mode: Mode, request: ChatCompletions.CompletionRequest, seen: Array<Response.StreamPartEncoded>) =>
  mode === "stream"
    ? Stream.runForEach(client.stream(request), (p) => Effect.sync(() => void seen.push(p)))
    : client.push(request, (p) => void seen.push(p))

const collectWith = (mode: Mode) => (request: ChatCompletions.CompletionRequest, apiKey = "sk-test") =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const client = yield* ChatCompletions.make({ baseUrl: server.baseUrl, apiKey: Redacted.make(apiKey) })
      const seen: Array<Response.StreamPartEncoded> = []
      yield* read(client, mode, request, seen)
      return seen
    })).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

const prompt = Prompt.make([{ role: "system", content: "Be brief." }, { role: "user", content: "Say hello to the world" }])

describe.each<Mode>(["stream", "push"])("Chat Completions client (%s)", (mode) => {
  const collect = collectWith(mode)
  it("streams text deltas and ends with the reported usage", async () => {
    server.enqueue(Scripted.text("Hello there, world!"))
    const parts = await collect({ model: "m1", prompt })
    const text = parts.filter((p): p is Response.TextDeltaPartEncoded => p.type === "text-delta").map((p) => p.delta)
    expect(text).toEqual(["Hello ", "there, ", "world!"])
    const finish = parts.at(-1) as Response.FinishPartEncoded
    expect(finish.type).toBe("finish")
    expect(finish.reason).toBe("stop")
    // the scripted server counts prompt words and chunks
    expect(finish.usage).toMatchObject({ inputTokens: 7, outputTokens: 3, totalTokens: 10 })
    const sent = server.requests.at(-1)!
    expect(sent.body).toMatchObject({
      model: "m1",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Say hello to the world" }]
    })
    expect(sent.headers.authorization).toBe("Bearer sk-test")
  })

  it("assembles tool calls whose arguments are split across chunks", async () => {
    server.enqueue(Scripted.toolCalls([
      { id: "c1", name: "math__calculate", arguments: { expression: "(17.5 * 3 + 2^10) / 7" } },
      { id: "c2", name: "text__shorten", arguments: { text: "A long text that goes on", max_length: 12 } }
    ], { split: 5 }))
    const parts = await collect({
      model: "m1",
      prompt,
      tools: [{ name: "math__calculate", description: "calc", parameters: { type: "object", properties: { expression: { type: "string" } } } }]
    })
    const calls = parts.filter((p): p is Response.ToolCallPartEncoded => p.type === "tool-call")
    expect(calls).toEqual([
      expect.objectContaining({ id: "c1", name: "math__calculate", params: { expression: "(17.5 * 3 + 2^10) / 7" } }),
      expect.objectContaining({ id: "c2", name: "text__shorten", params: { text: "A long text that goes on", max_length: 12 } })
    ])
    expect((parts.at(-1) as Response.FinishPartEncoded).reason).toBe("tool-calls")
    expect(server.requests.at(-1)!.body.tools[0]).toEqual({
      type: "function",
      function: { name: "math__calculate", description: "calc", parameters: { type: "object", properties: { expression: { type: "string" } } } }
    })
  })

  it("leaves usage undefined when the server reports none", async () => {
    server.enqueue({ ...Scripted.text("Hi"), usage: "none" })
    const finish = (await collect({ model: "m1", prompt })).at(-1) as Response.FinishPartEncoded
    expect(finish.usage.inputTokens).toBeUndefined()
    expect(finish.usage.outputTokens).toBeUndefined()
  })

  it("fails with the HTTP status on 429 and 500, and on a wrong key", async () => {
    server.enqueue({ status: 429, retryAfter: 2, error: { message: "Rate limit reached", type: "rate_limit_error" } })
    await expect(collect({ model: "m1", prompt })).rejects.toThrow(/429/)
    server.enqueue({ status: 500 })
    await expect(collect({ model: "m1", prompt })).rejects.toThrow(/500/)
    await expect(collect({ model: "m1", prompt }, "sk-wrong")).rejects.toThrow(/401/)
  })

  it("fails on an error event in the middle of a stream, after what came before", async () => {
    server.enqueue({ chunks: [{ content: "Partial " }, { error: "model crashed" }] })
    const seen: Array<Response.StreamPartEncoded> = []
    const exit = await Effect.runPromiseExit(
      Effect.scoped(Effect.gen(function*() {
        const client = yield* ChatCompletions.make({ baseUrl: server.baseUrl, apiKey: Redacted.make("sk-test") })
        yield* read(client, mode, { model: "m1", prompt }, seen)
      })).pipe(Effect.provide(NodeHttpClient.layerUndici))
    )
    expect(seen.flatMap((p) => (p.type === "text-delta" ? [p.delta] : []))).toEqual(["Partial "])
    expect(exit._tag).toBe("Failure")
    expect(String(exit._tag === "Failure" ? exit.cause : "")).toMatch(/model crashed/)
  })

  it("serves as an @effect/ai LanguageModel", async () => {
    server.enqueue(Scripted.text("Four."))
    const response = await Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const client = yield* ChatCompletions.make({ baseUrl: server.baseUrl, apiKey: Redacted.make("sk-test") })
        const model = yield* client.languageModel("m2")
        return yield* Effect.provideService(LanguageModel.generateText({ prompt: "What is 2+2?" }), LanguageModel.LanguageModel, model)
      })).pipe(Effect.provide(NodeHttpClient.layerUndici))
    )
    expect(response.text).toBe("Four.")
    expect(response.usage.outputTokens).toBe(1)
    expect(server.requests.at(-1)!.body.model).toBe("m2")
  })
})
