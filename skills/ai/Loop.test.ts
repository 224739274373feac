/**
 * The turn's tool loop against the scripted server (real HTTP and SSE) and a recording skill
 * invoker: streamed text billed from the reported usage, parallel tool calls (wall time ≈ the
 * slower), the allowlist, argument validation, failing skills, confirmation of `write` skills,
 * the round limit, history trimmed to the context budget, and a cancel charging exactly the
 * prompt sent and the output received.
 */
import * as Prompt from "@effect/ai/Prompt"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as JsonSchema from "../manifest/JsonSchema.ts"
import * as Llm from "./Llm.ts"
import * as Loop from "./Loop.ts"
import * as Settings from "./Settings.ts"
import * as Scripted from "./testing/ScriptedServer.ts"
import * as Tokens from "./Tokens.ts"

let server: Scripted.ScriptedServer
let tokens: Tokens.Tokens["Type"]
beforeAll(async () => {
  server = await Scripted.start()
  tokens = await Effect.runPromise(Tokens.make)
})
afterAll(() => server.close())
beforeEach(() => {
  server.requests.length = 0
})

const tool = (app: string, skill: string, extra: Partial<Loop.ToolDef> = {}): Loop.ToolDef => ({
  name: Loop.toolName(app, skill),
  app,
  skill,
  description: `${app} ${skill}`,
  parameters: { type: "object", properties: { x: { type: "integer" } }, required: ["x"], additionalProperties: false },
  sideEffects: "read",
  timeoutMs: 2000,
  ...extra
})

interface Invocation {
  readonly tool: string
  readonly input: unknown
  readonly started: number
  ended: number
}

/** An invoker that validates with the JSON Schema and runs `behaviour` per skill. */
const recorder = (behaviour: Record<string, (input: { x: number }) => Effect.Effect<unknown, Loop.ToolError>> = {}) => {
  const calls: Array<Invocation> = []
  const invoker: Loop.SkillInvoker = {
    validate: (t, input) => {
      const issues = JsonSchema.validate(t.parameters, input)
      return issues.length === 0 ? Effect.void : Effect.fail(new Loop.ToolError({ code: "invalid_input", message: JsonSchema.summarize(issues) }))
    },
    invoke: (t, input) =>
      Effect.gen(function*() {
        const record: Invocation = { tool: t.name, input, started: performance.now(), ended: 0 }
        calls.push(record)
        const run = behaviour[t.skill] ?? ((i: { x: number }) => Effect.succeed({ doubled: i.x * 2 }))
        const output = yield* run(input as { x: number }).pipe(Effect.ensuring(Effect.sync(() => (record.ended = performance.now()))))
        return { output, credits: 1 }
      })
  }
  return { calls, invoker }
}

const providers = (extra: Partial<Settings.ProviderEntry> = {}) => [
  Settings.providerOf({ name: "s", base_url: server.baseUrl, models: [{ name: "m", context_window: 4096, max_output_tokens: 256 }], ...extra }, Option.none())
]

const runLoop = (
  input: Partial<Loop.LoopInput>,
  options: {
    readonly invoker?: Loop.SkillInvoker
    readonly confirm?: Loop.LoopDeps["confirm"]
    readonly maxToolRounds?: number
    readonly price?: Settings.Price
    readonly providers?: ReadonlyArray<Settings.ProviderSettings>
  } = {}
) => {
  const events: Array<Loop.LoopEvent> = []
  const program = Effect.gen(function*() {
    const llm = yield* Llm.Llm
    const deps: Loop.LoopDeps = {
      llm,
      tokens,
      priceOf: () => Effect.succeed(options.price ?? { input: 1, output: 2 }),
      invoker: options.invoker ?? recorder().invoker,
      confirm: options.confirm ?? (() => Effect.succeed("approved" as const)),
      maxToolRounds: options.maxToolRounds ?? 5,
      confirmTimeout: Duration.seconds(5)
    }
    return yield* Loop.run(deps, { model: "default", systemPrompt: "You are terse.", history: [], text: "hello", tools: [], ...input }, (e) => void events.push(e))
  }).pipe(Effect.provide(Llm.layer(Settings.make({ providers: options.providers ?? providers() }))), Effect.provide(NodeHttpClient.layerUndici))
  return { events, program }
}

/** Answers tool calls until the last message is a tool result, then text. */
const toolsThenText = (calls: ReadonlyArray<{ readonly name: string; readonly arguments: unknown }>, answer = "Done.") => (r: Scripted.RecordedRequest): Scripted.Script =>
  r.body.messages.at(-1).role === "tool" ? Scripted.text(answer) : Scripted.toolCalls(calls, { split: 4 })

describe("the tool loop", () => {
  it("streams the answer and charges the reported usage at the model's price", async () => {
    server.respond(() => ({ ...Scripted.text("Hi there, friend."), usage: { prompt_tokens: 1500, completion_tokens: 700 } }))
    const { events, program } = runLoop({})
    const result = await Effect.runPromise(program)
    expect(result.text).toBe("Hi there, friend.")
    expect(events.filter((e) => e.kind === "delta").map((e) => (e as { text: string }).text)).toEqual(["Hi ", "there, ", "friend."])
    // 1.5 × 1 + 0.7 × 2 = 2.9 → 3
    expect(result.credits).toBe(3)
    expect(events.at(-1)).toEqual({ kind: "cost", credits: 3 })
    expect(server.requests[0]!.body.messages).toEqual([{ role: "system", content: "You are terse." }, { role: "user", content: "hello" }])
    expect(server.requests[0]!.body.tools).toBeUndefined()
  })

  it("counts tokens locally when the provider reports none", async () => {
    server.respond(() => ({ ...Scripted.text("one two three"), usage: "none" }))
    const { program } = runLoop({}, { price: { input: 0, output: 1000 } })
    const result = await Effect.runPromise(program)
    expect(result.usage.outputTokens).toBe(tokens.count("one two three"))
    expect(result.credits).toBe(tokens.count("one two three"))
  })

  it("runs two tool calls of one step in parallel: wall time ≈ the slower, not the sum", async () => {
    const { calls, invoker } = recorder({
      slow: (i) => Effect.as(Effect.sleep("1000 millis"), { slow: i.x }),
      quick: (i) => Effect.as(Effect.sleep("900 millis"), { quick: i.x })
    })
    server.respond(toolsThenText([{ name: "demo__slow", arguments: { x: 1 } }, { name: "demo__quick", arguments: { x: 2 } }]))
    const { events, program } = runLoop({ tools: [tool("demo", "slow"), tool("demo", "quick")] }, { invoker })
    const result = await Effect.runPromise(program)
    expect(result.text).toBe("Done.")
    expect(calls.map((c) => c.tool).sort()).toEqual(["demo__quick", "demo__slow"])
    // both started before either ended
    expect(Math.max(...calls.map((c) => c.started))).toBeLessThan(Math.min(...calls.map((c) => c.ended)))
    // the calls took about the slower one's 1,000 ms, not the sum (1,900 ms); a generous bound for a busy machine
    const wall = Math.max(...calls.map((c) => c.ended)) - Math.min(...calls.map((c) => c.started))
    expect(wall).toBeGreaterThanOrEqual(995)
    expect(wall).toBeLessThan(1.6 * 1000)
    const results = events.filter((e) => e.kind === "skill_result")
    expect(results).toHaveLength(2)
    expect(results.every((r) => r.kind === "skill_result" && r.ok)).toBe(true)
    // the results went back to the model as tool messages, by call id
    const second = server.requests[1]!.body
    const toolMessages = second.messages.filter((m: { role: string }) => m.role === "tool")
    expect(toolMessages.map((m: { content: string }) => JSON.parse(m.content))).toEqual([{ slow: 1 }, { quick: 2 }])
    expect(second.messages.find((m: { role: string }) => m.role === "assistant").tool_calls).toHaveLength(2)
    expect(server.requests[0]!.body.tools.map((t: { function: { name: string } }) => t.function.name)).toEqual(["demo__slow", "demo__quick"])
  })

  it("answers a tool outside the allowlist, bad JSON and invalid arguments with tool errors, running nothing", async () => {
    const { calls, invoker } = recorder()
    server.respond(toolsThenText([
      { name: "secret__steal", arguments: { x: 1 } },
      { name: "demo__double", arguments: "{not json" },
      { name: "demo__double", arguments: { x: "seven" } }
    ], "Sorry."))
    const { events, program } = runLoop({ tools: [tool("demo", "double")] }, { invoker })
    const result = await Effect.runPromise(program)
    expect(result.text).toBe("Sorry.")
    expect(calls).toEqual([])
    const errors = events.flatMap((e) => (e.kind === "skill_result" ? [e.error] : []))
    expect(errors).toEqual([
      expect.stringMatching(/^skill_not_allowed:/),
      expect.stringMatching(/^invalid_arguments:.*not JSON/),
      expect.stringMatching(/^invalid_input: x: must be integer/)
    ])
    const sent = server.requests[1]!.body.messages.filter((m: { role: string }) => m.role === "tool").map((m: { content: string }) => JSON.parse(m.content).error.code)
    expect(sent).toEqual(["skill_not_allowed", "invalid_arguments", "invalid_input"])
  })

  it("gives a failing skill's error to the model and goes on", async () => {
    const { invoker } = recorder({ broken: () => Effect.fail(new Loop.ToolError({ code: "skill_failed", message: "the plugin trapped" })) })
    server.respond(toolsThenText([{ name: "demo__broken", arguments: { x: 1 } }], "It failed, sorry."))
    const { events, program } = runLoop({ tools: [tool("demo", "broken")] }, { invoker })
    const result = await Effect.runPromise(program)
    expect(result.text).toBe("It failed, sorry.")
    expect(events.find((e) => e.kind === "skill_result")).toMatchObject({ ok: false, error: "skill_failed: the plugin trapped" })
  })

  it("times a skill out on its own timeout", async () => {
    const { invoker } = recorder({ stuck: () => Effect.never })
    server.respond(toolsThenText([{ name: "demo__stuck", arguments: { x: 1 } }], "Too slow."))
    const { events, program } = runLoop({ tools: [tool("demo", "stuck", { timeoutMs: 100 })] }, { invoker })
    await Effect.runPromise(program)
    expect(events.find((e) => e.kind === "skill_result")).toMatchObject({ ok: false, error: expect.stringMatching(/^skill_timeout:/) })
  })

  it("asks before a write skill: runs it when approved, refuses it when declined or unanswered", async () => {
    for (const answer of ["approved", "declined", "timeout"] as const) {
      const { calls, invoker } = recorder()
      server.respond(toolsThenText([{ name: "notes__save", arguments: { x: 5 } }], `ok ${answer}`))
      const asked: Array<string> = []
      const { events, program } = runLoop({ tools: [tool("notes", "save", { sideEffects: "write" })] }, {
        invoker,
        confirm: (callId) => Effect.sync(() => (asked.push(callId), answer))
      })
      await Effect.runPromise(program)
      const required = events.find((e) => e.kind === "confirmation_required")
      expect(required).toMatchObject({ app: "notes", skill: "save", input: { x: 5 } })
      expect(asked).toEqual([(required as { callId: string }).callId])
      expect(events.find((e) => e.kind === "confirmation_resolved")).toMatchObject({ approved: answer === "approved", reason: answer })
      expect(calls).toHaveLength(answer === "approved" ? 1 : 0)
      const result = events.find((e) => e.kind === "skill_result")!
      expect(result).toMatchObject(answer === "approved" ? { ok: true } : { ok: false, error: expect.stringMatching(`^confirmation_${answer}`) })
    }
  })

  it("stops offering tools after the round limit", async () => {
    const { calls, invoker } = recorder()
    server.respond((r) => (r.body.tools ? Scripted.toolCalls([{ name: "demo__double", arguments: { x: 1 } }]) : Scripted.text("Enough.")))
    const { program } = runLoop({ tools: [tool("demo", "double")] }, { invoker, maxToolRounds: 2 })
    const result = await Effect.runPromise(program)
    expect(result.text).toBe("Enough.")
    expect(result.rounds).toBe(3)
    expect(calls).toHaveLength(2)
    expect(server.requests.map((r) => r.body.tools !== undefined)).toEqual([true, true, false])
  })

  it("trims the oldest history to the model's context budget", async () => {
    server.respond(() => Scripted.text("Fine."))
    const history = Array.from({ length: 40 }, (_, i) => ({ role: i % 2 === 0 ? "user" as const : "mate" as const, text: `message ${i} ${"word ".repeat(60)}` }))
    const { program } = runLoop({ history }, { providers: [Settings.providerOf({ name: "s", base_url: server.baseUrl, models: [{ name: "m", context_window: 1200, max_output_tokens: 200 }] }, Option.none())] })
    await Effect.runPromise(program)
    const messages = server.requests[0]!.body.messages as Array<{ role: string; content: string }>
    expect(messages[0]).toEqual({ role: "system", content: "You are terse." })
    expect(messages.at(-1)).toEqual({ role: "user", content: "hello" })
    const kept = messages.slice(1, -1)
    expect(kept.length).toBeGreaterThan(3)
    expect(kept.length).toBeLessThan(40)
    // the newest history is kept, in order, the oldest left out
    expect(kept.at(-1)!.content).toMatch(/^message 39 /)
    expect(kept[0]!.content).toMatch(new RegExp(`^message ${40 - kept.length} `))
    const total = messages.reduce((n, m) => n + Tokens.perMessage + tokens.count(m.content), Tokens.perAnswer)
    expect(total).toBeLessThanOrEqual(1000)
  })

  it("charges exactly the prompt sent and the output received when cancelled mid-stream", async () => {
    server.respond(() => ({ chunks: Array.from({ length: 50 }, (_, i) => ({ content: `w${i} `, delayMs: 20 })) }))
    const { events, program } = runLoop({}, { price: { input: 1000, output: 1000 } })
    const fiber = Effect.runFork(program)
    await new Promise((r) => setTimeout(r, 300))
    await Effect.runPromise(Fiber.interrupt(fiber))
    const received = events.flatMap((e) => (e.kind === "delta" ? [e.text] : [])).join("")
    expect(received.length).toBeGreaterThan(0)
    expect(received.split(" ").length).toBeLessThan(50)
    const prompt = Tokens.perAnswer + 2 * Tokens.perMessage + tokens.count("You are terse.") + tokens.count("hello")
    const cost = events.filter((e) => e.kind === "cost").at(-1) as { credits: number }
    expect(cost.credits).toBe(prompt + tokens.count(received))
    await new Promise((r) => setTimeout(r, 50))
    expect(server.requests[0]!.aborted).toBe(true)
  })

  it("offers the caller's own tools and ends the turn with their calls, running none of them", async () => {
    const { calls, invoker } = recorder()
    server.respond(() => Scripted.toolCalls([{ id: "c-1", name: "get_weather", arguments: { city: "Oslo" } }, { name: "demo__double", arguments: { x: 1 } }]))
    const { events, program } = runLoop({
      tools: [tool("demo", "double")],
      clientTools: [{ name: "get_weather", description: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } }],
      conversation: {
        system: ["Answer in English."],
        history: [Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: "earlier" })] })],
        current: [Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: "weather in Oslo?" })] })]
      }
    }, { invoker })
    const result = await Effect.runPromise(program)
    expect(result.finishReason).toBe("tool_calls")
    expect(result.clientToolCalls).toEqual([{ id: "c-1", name: "get_weather", params: { city: "Oslo" } }])
    expect(calls).toEqual([])
    expect(events.some((e) => e.kind === "skill_call")).toBe(false)
    const sent = server.requests[0]!.body
    expect(sent.tools.map((t: { function: { name: string } }) => t.function.name)).toEqual(["demo__double", "get_weather"])
    expect(sent.messages).toEqual([
      { role: "system", content: "You are terse." },
      { role: "system", content: "Answer in English." },
      { role: "user", content: "earlier" },
      { role: "user", content: "weather in Oslo?" }
    ])
  })

  it("estimates a hold that covers the first request and two tool rounds", async () => {
    const estimate = await Effect.runPromise(Effect.gen(function*() {
      const llm = yield* Llm.Llm
      return yield* Loop.estimate({ llm, tokens, priceOf: () => Effect.succeed({ input: 1, output: 2 }), maxToolRounds: 5 }, { model: "default", systemPrompt: "", history: [], text: "hi", tools: [] })
    }).pipe(Effect.provide(Llm.layer(Settings.make({ providers: providers() }))), Effect.provide(NodeHttpClient.layerUndici)))
    // (prompt + 1000) × 3 input tokens at 1/1000, 256 × 3 output tokens at 2/1000
    expect(estimate).toBe(Math.ceil(((Tokens.perAnswer + Tokens.perMessage + tokens.count("hi") + 1000) * 3) / 1000 + (256 * 3 * 2) / 1000))
  })
})
