import * as Effect from "effect/Effect"
import * as LogLevel from "effect/LogLevel"
import { describe, expect, it } from "vitest"
import * as Metrics from "./Metrics.ts"
import * as Telemetry from "./Telemetry.ts"

const logged = async (effect: Effect.Effect<void>) => {
  const lines: Array<string> = []
  await Effect.runPromise(effect.pipe(Effect.provide(Telemetry.layerLogging({ service: "test", level: LogLevel.Debug, format: "json", write: (l) => lines.push(l) }))))
  return lines.map((l) => JSON.parse(l) as Telemetry.LogRecord)
}

describe("product metrics", () => {
  it("are on /metrics from the first scrape, counters typed as counters", async () => {
    await Effect.runPromise(Metrics.touchAll)
    const text = Telemetry.renderPrometheus(Telemetry.processGauges())
    for (const name of Metrics.names) expect(text, name).toContain(`# TYPE ${name} `)
    expect(text).toContain("# TYPE troupe_turns_ended_total counter")
    expect(text).toContain("# TYPE troupe_turns_running gauge")
    expect(text).toContain("# TYPE troupe_turn_duration_seconds histogram")
    expect(text).toContain("# TYPE troupe_background_slices_total counter")
  })

  it("count a turn's start and end, and log one line with its ids and never its content", async () => {
    const ids = { chatId: "chat1", turnId: "turn1", userId: "user1", apiKeyId: "key1" }
    const lines = await logged(Effect.zipRight(Metrics.turnStarted(ids), Metrics.turnEnded(ids, { status: "failed", code: "mate_failed", seconds: 1.5, charged: 0 })))
    const text = Telemetry.renderPrometheus([])
    expect(text).toMatch(/^troupe_turns_ended_total\{status="failed",code="mate_failed"\} 1$/m)
    expect(text).toMatch(/^troupe_turn_duration_seconds_bucket\{status="failed",le="2"\} 1$/m)
    expect(text).toMatch(/^troupe_turns_running 0$/m)
    const line = lines.find((l) => l.message === "turn")!
    expect(line.level).toBe("info")
    expect(line.context).toMatchObject({ chat_id: "chat1", turn_id: "turn1", user_id: "user1", api_key_id: "key1", status: "failed", code: "mate_failed", duration_ms: 1500 })
  })

  it("label skill calls by app, skill and error code, and LLM tokens by kind", async () => {
    const lines = await logged(Effect.all([
      Metrics.skillCalled({ app: "calc", skill: "add", seconds: 0.002 }, { userId: "u", chatId: "c" }),
      Metrics.skillCalled({ app: "calc", skill: "add", seconds: 0.2, code: "skill_timeout" }),
      Metrics.llmRequested({ provider: "openai", model: "m", seconds: 2, outcome: "ok", inputTokens: 10, outputTokens: 5 })
    ], { discard: true }))
    const text = Telemetry.renderPrometheus([])
    expect(text).toMatch(/^troupe_skill_calls_total\{app="calc",skill="add",outcome="ok",code="none"\} 1$/m)
    expect(text).toMatch(/^troupe_skill_calls_total\{app="calc",skill="add",outcome="error",code="skill_timeout"\} 1$/m)
    expect(text).toMatch(/^troupe_llm_tokens_total\{provider="openai",model="m",kind="output"\} 5$/m)
    expect(lines.filter((l) => l.message === "skill call")).toHaveLength(2)
    expect(lines[0]!.context).toMatchObject({ app: "calc", skill: "add", outcome: "ok", user_id: "u", chat_id: "c" })
  })
})
