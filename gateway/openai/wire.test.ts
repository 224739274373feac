/**
 * The OpenAI wire format: requests as clients send them (text parts, tool round trips, unknown
 * fields ignored) into the turn's `Completion`; refusals name the parameter; chunks, whole
 * answers and errors in OpenAI's shapes; stable, unique model ids for mates.
 */
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as Wire from "./wire.ts"

const decode = (body: unknown) => Either.flatMap(Wire.decodeRequest(body), (r) => Wire.toCompletion(r, (n) => n.includes("__")))

describe("OpenAI wire format", () => {
  it("turns a request with a tool round trip into the turn's completion", () => {
    const r = decode({
      model: "helper",
      messages: [
        { role: "developer", content: "Be brief." },
        { role: "user", content: [{ type: "text", text: "Weather in" }, { type: "text", text: "Oslo?" }] },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }] },
        { role: "tool", tool_call_id: "call_1", content: "{\"c\":3}" }
      ],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      temperature: 0.3,
      max_completion_tokens: 50,
      stream: true,
      stream_options: { include_usage: true },
      seed: 7,
      frequency_penalty: 0.1
    })
    expect(r).toEqual(Either.right({
      messages: [
        { role: "system", text: "Be brief." },
        { role: "user", text: "Weather in\nOslo?" },
        { role: "assistant", text: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }] },
        { role: "tool", text: "{\"c\":3}", toolCallId: "call_1" }
      ],
      tools: [{ name: "get_weather", description: "", parameters: { type: "object", properties: { city: { type: "string" } } } }],
      toolChoice: "required",
      temperature: 0.3,
      maxTokens: 50
    }))
  })

  it("refuses what it cannot take, naming the parameter", () => {
    const problem = (body: unknown) => Either.getLeft(decode(body)).pipe((o) => (o._tag === "Some" ? o.value : undefined))
    expect(problem({ model: "m", messages: [] })).toMatchObject({ param: "messages" })
    expect(problem({ model: "m", messages: [{ role: "user", content: "x" }], temperature: 3 })).toMatchObject({ param: "temperature" })
    expect(problem({ model: "m", messages: [{ role: "user", content: "x" }], n: 2 })).toMatchObject({ param: "n" })
    expect(problem({ model: "m", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }))
      .toMatchObject({ param: "messages.0.content.0.type", code: "unsupported_content" })
    expect(problem({ model: "m", messages: [{ role: "system", content: "x" }] })).toMatchObject({ param: "messages" })
    expect(problem({ model: "m", messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "text__summarize" } }] }))
      .toMatchObject({ param: "tools.0.function.name" })
    expect(problem({ model: "m", messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "bad name" } }] }))
      .toMatchObject({ param: "tools.0.function.name" })
  })

  it("writes chunks, a whole answer and errors in OpenAI's shapes", () => {
    const c = Wire.chunker({ id: "chatcmpl-1", created: 1, model: "helper" })
    const frames = [c.text("Hi"), c.text("!"), c.finish("stop"), c.usage({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }), c.done]
    const parsed = frames.slice(0, 4).map((f) => JSON.parse(f.slice("data: ".length)))
    expect(parsed[0].choices[0]).toEqual({ index: 0, delta: { role: "assistant", content: "Hi" }, logprobs: null, finish_reason: null })
    expect(parsed[1].choices[0].delta).toEqual({ content: "!" })
    expect(parsed[2].choices[0]).toMatchObject({ delta: {}, finish_reason: "stop" })
    expect(parsed[3]).toMatchObject({ object: "chat.completion.chunk", choices: [], usage: { total_tokens: 5 } })
    expect(frames[4]).toBe("data: [DONE]\n\n")
    const whole = Wire.completion({ id: "x", created: 1, model: "m", text: "", toolCalls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }], finishReason: "tool_calls", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })
    expect(whole.choices[0]!.message).toEqual({ role: "assistant", content: null, refusal: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] })
    expect(Wire.errorBody(429, "rate_limited", "slow down")).toEqual({ error: { message: "slow down", type: "rate_limit_error", param: null, code: "rate_limited" } })
    expect(Wire.errorBody(401, "invalid_api_key", "no").error.type).toBe("authentication_error")
  })

  it("gives mates stable, unique model ids", () => {
    const at = (n: number) => new Date(2026, 0, n)
    const ids = Wire.modelIds([
      { mateId: "m3", name: "Research Helper", createdAt: at(3) },
      { mateId: "m1", name: "research helper!", createdAt: at(1) },
      { mateId: "m2", name: "Crème Brûlée", createdAt: at(2) },
      { mateId: "m4", name: "日本", createdAt: at(4) }
    ])
    expect(ids.map((i) => [i.id, i.mate.mateId])).toEqual([["research-helper", "m1"], ["creme-brulee", "m2"], ["research-helper-2", "m3"], ["mate", "m4"]])
  })
})
