/**
 * The mate's turn runner over the real skills registry (first-party apps plus a test app with a
 * `write` skill), recorded credit holds, and the scripted provider over real HTTP: the setup help
 * without a provider, `/app.skill {json}` with and without a provider (allowlist, bad JSON,
 * confirmation), tools from the allowlist with each call's own hold, and a conversation handed
 * over whole with the caller's tools.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Host from "../host/Host.ts"
import * as KvStore from "../host/KvStore.ts"
import * as Skills from "../Skills.ts"
import * as FirstParty from "../firstparty/apps.ts"
import * as Llm from "./Llm.ts"
import * as Mate from "./Mate.ts"
import * as Prices from "./Prices.ts"
import * as Settings from "./Settings.ts"
import * as Scripted from "./testing/ScriptedServer.ts"
import * as TurnSkills from "./TurnSkills.ts"
import * as NotesApp from "./testing/NotesApp.ts"

const { app: notes, saved } = NotesApp.make()

interface HoldRecord {
  readonly key: string
  readonly amount: number
  outcome: "held" | "settled" | "released"
  charged: number
}

const holds: Array<HoldRecord> = []
const recordedHolds: TurnSkills.Holds = {
  withHold: (_turn, key, _skill, amount, work) =>
    Effect.gen(function*() {
      const record: HoldRecord = { key, amount, outcome: "held", charged: 0 }
      holds.push(record)
      return yield* work.pipe(
        Effect.map((r) => {
          record.outcome = "settled"
          record.charged = Math.min(r.credits, amount)
          return r.value
        }),
        Effect.onError(() => Effect.sync(() => (record.outcome = "released")))
      )
    }),
  status: (_turn, key) => Effect.sync(() => {
    const found = holds.find((h) => h.key === key)
    return found === undefined ? "absent" : found.outcome === "held" ? "open" : "closed"
  }),
  release: (_turn, key) => Effect.sync(() => {
    const found = holds.find((h) => h.key === key)
    if (found && found.outcome === "held") found.outcome = "released"
  })
}

const mates: Record<string, Mate.MateInfo> = {
  helper: { name: "Helper", systemPrompt: "You help.", model: "default", allowedSkills: ["math", "text.shorten", "notes"] },
  bare: { name: "Bare", systemPrompt: "", model: "default", allowedSkills: [] }
}

let server: Scripted.ScriptedServer
beforeAll(async () => {
  server = await Scripted.start()
})
afterAll(() => server.close())
beforeEach(() => {
  holds.length = 0
  saved.length = 0
  server.requests.length = 0
})

const layerFor = (providers: ReadonlyArray<Settings.ProviderSettings>) =>
  Layer.mergeAll(
    Llm.layer(Settings.make({ providers, confirmTimeout: Duration.seconds(3) })),
    Prices.layerMemory({ input: 1, output: 2 }),
    Layer.succeed(Mate.MateDirectory, {
      get: (_owner, mateId) => (mates[mateId] ? Effect.succeed(mates[mateId]!) : Effect.fail(new Mate.MateUnavailable({ message: `no mate ${mateId}` })))
    }),
    TurnSkills.layer(recordedHolds).pipe(Layer.provide(Skills.layer([...FirstParty.apps, notes]).pipe(Layer.provide(Host.layer({ poolSize: 1 })), Layer.provide(KvStore.layerMemory())))),
    Mate.layerConfirmations
  ).pipe(Layer.provideMerge(NodeHttpClient.layerUndici))

const provider = () => [Settings.providerOf({ name: "s", base_url: server.baseUrl, models: [{ name: "m", context_window: 8192, max_output_tokens: 256 }] }, Option.none())]

const turn = (text: string, mateId = "helper", extra: Partial<Mate.MateTurn> = {}): Mate.MateTurn => ({
  chatId: "c1",
  turnId: "t1",
  ownerId: "u1",
  accountId: "u1",
  holdKey: "chat:c1:t1",
  mateId,
  text,
  history: [],
  ...extra
})

const runTurn = (t: Mate.MateTurn, providers: ReadonlyArray<Settings.ProviderSettings>, during?: (events: Array<Mate.MateEvent>) => Effect.Effect<void, never, Mate.Confirmations>) => {
  const events: Array<Mate.MateEvent> = []
  return Effect.runPromise(
    Effect.gen(function*() {
      const runner = yield* Mate.make
      const fiber = yield* Effect.fork(Effect.either(runner.run(t, (e) => void events.push(e))))
      if (during) yield* during(events)
      const result = yield* Fiber.join(fiber)
      return { result, events, text: events.flatMap((e) => (e.kind === "delta" ? [e.text] : [])).join("") }
    }).pipe(Effect.provide(layerFor(providers)))
  )
}

describe("the mate's turn", () => {
  it("explains how to configure a provider when there is none", async () => {
    const { result, text } = await runTurn(turn("hello"), [])
    expect(Either.isRight(result) && result.right.credits).toBe(0)
    expect(text).toMatch(/no language model is configured/)
    expect(text).toMatch(/TROUPE_LLM_BASE_URL=http:\/\/127\.0\.0\.1:11434\/v1/)
    expect(text).toMatch(/\/math\.calculate/)
  })

  it("runs /app.skill {json} without a provider, within the allowlist", async () => {
    const ok = await runTurn(turn("/math.calculate {\"expression\": \"2^10 / 8\"}"), [])
    expect(ok.events.find((e) => e.kind === "skill_result")).toMatchObject({ ok: true, output: { result: 128 } })
    expect(ok.text).toMatch(/"result": 128/)

    const refused = await runTurn(turn("/text.summarize {\"text\": \"x\"}"), [])
    expect(refused.events.find((e) => e.kind === "skill_result")).toMatchObject({ ok: false, error: expect.stringMatching(/^skill_not_allowed/) })
    expect(refused.text).toMatch(/Helper may not use `text.summarize`/)

    const bare = await runTurn(turn("/math.calculate {\"expression\": \"1\"}", "bare"), [])
    expect(bare.text).toMatch(/has no skills/)

    const badJson = await runTurn(turn("/math.calculate {expression: 1}"), [])
    expect(badJson.text).toMatch(/needs a JSON object/)
    expect(badJson.events.some((e) => e.kind === "skill_call")).toBe(false)

    const invalid = await runTurn(turn("/math.calculate {\"expr\": \"1\"}"), [])
    expect(invalid.events.find((e) => e.kind === "skill_result")).toMatchObject({ ok: false, error: expect.stringMatching(/^invalid_input/) })
    expect(holds).toEqual([])
  })

  it("asks before an explicit write skill and holds its price on its own key", async () => {
    const { events, text } = await runTurn(turn("/notes.save {\"text\": \"buy milk\"}"), [], (events) =>
      Effect.gen(function*() {
        const confirmations = yield* Mate.Confirmations
        while (!events.some((e) => e.kind === "confirmation_required")) yield* Effect.sleep("10 millis")
        const required = events.find((e) => e.kind === "confirmation_required") as { callId: string }
        expect(yield* confirmations.resolve("c1", "nope", true)).toBe(false)
        expect(yield* confirmations.resolve("c1", required.callId, true)).toBe(true)
      }))
    expect(events.map((e) => e.kind)).toEqual(["skill_call", "confirmation_required", "confirmation_resolved", "skill_result", "delta"])
    expect(saved).toEqual([{ text: "buy milk" }])
    expect(holds).toEqual([{ key: "chat:c1:t1:a1x", amount: 3, outcome: "settled", charged: 3 }])
    expect(text).toMatch(/"saved": true/)
  })

  it("offers the allowed skills as tools and runs the model's calls, each with its own hold", async () => {
    server.respond((r) =>
      r.body.messages.at(-1).role === "tool"
        ? Scripted.text("2+3 is 5, and shortened.")
        : Scripted.toolCalls([
          { id: "a", name: "math__calculate", arguments: { expression: "2+3" } },
          { id: "b", name: "text__shorten", arguments: { text: "A rather long sentence that goes on and on.", max_length: 20 } }
        ]))
    const { result, events, text } = await runTurn(turn("add and shorten"), provider())
    expect(text).toBe("2+3 is 5, and shortened.")
    const offered = server.requests[0]!.body.tools.map((t: { function: { name: string } }) => t.function.name).sort()
    expect(offered).toEqual(["math__calculate", "notes__save", "text__shorten"])
    expect(events.filter((e) => e.kind === "skill_result").map((e) => (e as { ok: boolean }).ok)).toEqual([true, true])
    // math.calculate is free (no hold); text.shorten holds its estimate and settles what it used
    expect(holds).toHaveLength(1)
    expect(holds[0]).toMatchObject({ key: "chat:c1:t1:a1c2", outcome: "settled" })
    expect(holds[0]!.charged).toBeLessThanOrEqual(holds[0]!.amount)
    expect(Either.isRight(result) && result.right.credits).toBeGreaterThan(0)
  })

  it("releases the skill holds an earlier attempt left open when the turn runs again", async () => {
    holds.push(
      { key: "chat:c1:t1:a1c1", amount: 2, outcome: "held", charged: 0 },
      { key: "chat:c1:t1:a1c2", amount: 2, outcome: "settled", charged: 1 },
      { key: "chat:c1:t1:a1c4", amount: 5, outcome: "held", charged: 0 },
      { key: "chat:c1:t1:a1x", amount: 3, outcome: "held", charged: 0 },
      { key: "chat:c1:t1:a2c1", amount: 3, outcome: "held", charged: 0 }
    )
    const { text } = await runTurn(turn("hello", "helper", { attempt: 2 }), [])
    expect(text).toMatch(/no language model/)
    expect(holds.map((h) => [h.key, h.outcome])).toEqual([
      ["chat:c1:t1:a1c1", "released"],
      ["chat:c1:t1:a1c2", "settled"],
      ["chat:c1:t1:a1c4", "released"],
      ["chat:c1:t1:a1x", "released"],
      // the running attempt's own holds are not touched
      ["chat:c1:t1:a2c1", "held"]
    ])
  })

  it("takes a conversation whole and returns the caller's tool calls", async () => {
    server.respond(() => Scripted.toolCalls([{ id: "w1", name: "get_weather", arguments: { city: "Oslo" } }]))
    const { result } = await runTurn(turn("", "helper", {
      completion: {
        messages: [{ role: "system", text: "Use tools." }, { role: "user", text: "Weather in Oslo?" }],
        tools: [{ name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" } } } }]
      }
    }), provider())
    expect(Either.isRight(result) && result.right).toMatchObject({ finishReason: "tool_calls", clientToolCalls: [{ id: "w1", name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }] })
    expect(server.requests[0]!.body.messages).toEqual([
      { role: "system", content: "You help." },
      { role: "system", content: "Use tools." },
      { role: "user", content: "Weather in Oslo?" }
    ])
  })
})
