/**
 * Providers behind one service, against two scripted servers over real HTTP: failover before the
 * first token (500, 429, a stall, a refused connection) and never after it (a mid-stream stall
 * ends the step with what came), the circuit breaker opening, skipping, half-opening with one
 * trial and closing, requests that every provider would refuse, model families, the settings
 * from the environment, and the Ollama probe.
 */
import * as Prompt from "@effect/ai/Prompt"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { freePort } from "../../runtime/testing/process.ts"
import * as Llm from "./Llm.ts"
import * as Settings from "./Settings.ts"
import * as Scripted from "./testing/ScriptedServer.ts"

let a: Scripted.ScriptedServer
let b: Scripted.ScriptedServer
beforeAll(async () => {
  a = await Scripted.start()
  b = await Scripted.start()
})
afterAll(async () => {
  await a.close()
  await b.close()
})
beforeEach(() => {
  a.requests.length = 0
  b.requests.length = 0
  a.respond(() => Scripted.text("from a"))
  b.respond(() => Scripted.text("from b"))
})

const entry = (name: string, server: { readonly baseUrl: string }, priority: number, extra: Partial<Settings.ProviderEntry> = {}): Settings.ProviderSettings =>
  Settings.providerOf({ name, base_url: server.baseUrl, models: [{ name: `${name}-llama`, family: "llama" }, `${name}-only`], priority, ...extra }, Option.none())

const withLlm = <A, E>(providers: ReadonlyArray<Settings.ProviderSettings>, f: (llm: Llm.Llm["Type"]) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.flatMap(Llm.Llm, f).pipe(Effect.provide(Llm.layer(Settings.make({ providers }))), Effect.provide(NodeHttpClient.layerUndici)))

const prompt = Prompt.make([{ role: "user", content: "hi there" }])

const fast = { first_token_timeout_ms: 300, idle_timeout_ms: 300, total_timeout_ms: 5000 }

describe("LLM providers", () => {
  it("answers from the first provider by priority and reports its usage", async () => {
    const result = await withLlm([entry("b", b, 2), entry("a", a, 1)], (llm) => llm.step({ model: "llama", prompt }))
    expect(result.provider).toBe("a")
    expect(result.model.name).toBe("a-llama")
    expect(result.text).toBe("from a")
    expect(result.usage).toEqual({ inputTokens: 2, outputTokens: 2 })
    expect(a.requests[0]!.body.model).toBe("a-llama")
    expect(b.requests).toHaveLength(0)
  })

  it("fails over before the first token: 500, 429, a stall and a refused connection", async () => {
    a.respond(() => ({ status: 500 }))
    const r1 = await withLlm([entry("a", a, 1), entry("b", b, 2)], (llm) => llm.step({ model: "llama", prompt }))
    expect(r1.provider).toBe("b")
    expect(r1.model.name).toBe("b-llama")
    expect(r1.skipped).toEqual([{ provider: "a", reason: "HTTP 500" }])

    a.respond(() => ({ status: 429, retryAfter: 1 }))
    expect((await withLlm([entry("a", a, 1), entry("b", b, 2)], (llm) => llm.step({ model: "llama", prompt }))).text).toBe("from b")

    a.respond(() => ({ stallBeforeFirstToken: true }))
    const started = Date.now()
    const r3 = await withLlm([entry("a", a, 1, fast), entry("b", b, 2)], (llm) => llm.step({ model: "llama", prompt }))
    expect(r3.text).toBe("from b")
    expect(r3.skipped[0]!.reason).toMatch(/no first token within 300 ms/)
    expect(Date.now() - started).toBeLessThan(3000)

    const closed = { baseUrl: `http://127.0.0.1:${await freePort()}/v1` }
    const r4 = await withLlm([entry("gone", closed, 1), entry("b", b, 2)], (llm) => llm.step({ model: "llama", prompt }))
    expect(r4.provider).toBe("b")
    expect(r4.skipped[0]!.reason).toMatch(/request failed/)
  })

  it("does not fail over after the first token: a mid-stream stall ends the step with what came", async () => {
    a.respond(() => ({ chunks: [{ content: "Half " }, { content: "an " }, { stall: true }] }))
    const seen: Array<string> = []
    const error = await withLlm([entry("a", a, 1, fast), entry("b", b, 2)], (llm) =>
      Effect.flip(llm.step({ model: "llama", prompt }, (p) => void (p.type === "text-delta" && seen.push(p.delta)))))
    expect(error).toMatchObject({ _tag: "StepFailed", code: "provider_failed", partial: true, provider: "a" })
    expect(error.message).toMatch(/idle timeout/)
    expect(seen).toEqual(["Half ", "an "])
    expect(b.requests).toHaveLength(0)
    // the provider saw the client leave
    await new Promise((r) => setTimeout(r, 50))
    expect(a.requests[0]!.aborted).toBe(true)
  })

  it("opens the breaker after consecutive failures, skips the provider, then lets one trial through", async () => {
    a.respond(() => ({ status: 503 }))
    const providers = [entry("a", a, 1, { breaker: { failures: 2, cooldown_ms: 400 } }), entry("b", b, 2)]
    await withLlm(providers, (llm) =>
      Effect.gen(function*() {
        yield* llm.step({ model: "llama", prompt })
        expect((yield* llm.providers)[0]!.health.state).toBe("closed")
        yield* llm.step({ model: "llama", prompt })
        const open = (yield* llm.providers)[0]!.health
        expect(open.state).toBe("open")
        expect(open.consecutiveFailures).toBe(2)
        expect(open.lastError).toBe("HTTP 503")
        // while open, a is not asked at all
        const skipped = yield* llm.step({ model: "llama", prompt })
        expect(skipped.skipped).toEqual([{ provider: "a", reason: "circuit open" }])
        expect(a.requests).toHaveLength(2)
        // after the cool-down: half-open, one trial; it fails, so open again
        yield* Effect.sleep("450 millis")
        expect((yield* llm.providers)[0]!.health.state).toBe("half_open")
        yield* llm.step({ model: "llama", prompt })
        expect(a.requests).toHaveLength(3)
        expect((yield* llm.providers)[0]!.health.state).toBe("open")
        // the next trial succeeds and closes it
        a.respond(() => Scripted.text("a is back"))
        yield* Effect.sleep("450 millis")
        const back = yield* llm.step({ model: "llama", prompt })
        expect(back.text).toBe("a is back")
        const closed = (yield* llm.providers)[0]!.health
        expect(closed.state).toBe("closed")
        expect(closed.consecutiveFailures).toBe(0)
      }))
  })

  it("lets only one request through while half-open", async () => {
    a.respond(() => ({ status: 500 }))
    const providers = [entry("a", a, 1, { breaker: { failures: 1, cooldown_ms: 200 } }), entry("b", b, 2)]
    await withLlm(providers, (llm) =>
      Effect.gen(function*() {
        yield* llm.step({ model: "llama", prompt })
        yield* Effect.sleep("250 millis")
        a.respond(() => Scripted.text("slow trial", { firstTokenDelayMs: 200 }))
        const results = yield* Effect.all([llm.step({ model: "llama", prompt }), llm.step({ model: "llama", prompt }), llm.step({ model: "llama", prompt })], { concurrency: "unbounded" })
        expect(results.map((r) => r.provider).sort()).toEqual(["a", "b", "b"])
      }))
  })

  it("neither fails over nor trips the breaker on a request every provider would refuse", async () => {
    a.respond(() => ({ status: 400, error: { message: "context length exceeded", type: "invalid_request_error" } }))
    const error = await withLlm([entry("a", a, 1, { breaker: { failures: 1 } }), entry("b", b, 2)], (llm) =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(llm.step({ model: "llama", prompt }))
        expect((yield* llm.providers)[0]!.health.state).toBe("closed")
        return e
      }))
    expect(error.code).toBe("provider_rejected")
    expect(b.requests).toHaveLength(0)
  })

  it("resolves models by name, family or default, and refuses a model nobody serves", async () => {
    await withLlm([entry("a", a, 1), entry("b", b, 2)], (llm) =>
      Effect.gen(function*() {
        expect(Option.getOrThrow(llm.resolve("default")).candidates.map((c) => c.model.name)).toEqual(["a-llama", "b-llama"])
        expect(Option.getOrThrow(llm.resolve("b-llama")).candidates.map((c) => c.model.name)).toEqual(["a-llama", "b-llama"])
        expect(Option.getOrThrow(llm.resolve("b-only")).candidates).toEqual([expect.objectContaining({ provider: "b" })])
        const e = yield* Effect.flip(llm.step({ model: "gpt-9", prompt }))
        expect(e.code).toBe("model_not_served")
        expect(e.message).toMatch(/a-llama/)
      }))
    const none = await withLlm([], (llm) => Effect.flip(llm.step({ model: "default", prompt })))
    expect(none.code).toBe("no_provider")
  })
})

describe("LLM settings", () => {
  const read = (env: Record<string, string>) =>
    Effect.runPromise(Effect.either(Effect.withConfigProvider(Settings.fromEnv, ConfigProvider.fromMap(new Map(Object.entries(env))))))

  it("reads TROUPE_LLM_PROVIDERS with keys from the variables it names", async () => {
    const settings = await read({
      TROUPE_LLM_PROVIDERS: JSON.stringify([
        { name: "openai", base_url: "https://api.openai.com/v1/", api_key_env: "OPENAI_KEY", models: ["gpt-4o-mini", { name: "gpt-4o", context_window: 128000 }], priority: 2 },
        { name: "local", base_url: "http://127.0.0.1:11434/v1", models: ["llama3.2"], priority: 1, first_token_timeout_ms: 5000, breaker: { failures: 5 } }
      ]),
      OPENAI_KEY: "sk-secret"
    })
    if (settings._tag === "Left") throw new Error(String(settings.left))
    const [openai, local] = settings.right.providers
    expect(settings.right.source).toBe("providers")
    expect(openai).toMatchObject({ name: "openai", baseUrl: "https://api.openai.com/v1", apiKeyEnv: "OPENAI_KEY", priority: 2 })
    expect(Redacted.value(Option.getOrThrow(openai!.apiKey))).toBe("sk-secret")
    expect(openai!.models[1]).toEqual({ name: "gpt-4o", family: "gpt-4o", contextWindow: 128000, maxOutputTokens: 1024 })
    expect(local).toMatchObject({ priority: 1, breaker: { failures: 5 } })
    expect(Option.isNone(settings.right.ollamaUrl)).toBe(true)
    expect(settings.right.defaultPrice).toEqual({ input: 1, output: 2 })
  })

  it("names the variable in one line when something is wrong", async () => {
    const bad = async (env: Record<string, string>) => {
      const r = await read(env)
      return r._tag === "Left" ? String(r.left) : "accepted"
    }
    expect(await bad({ TROUPE_LLM_PROVIDERS: "[{" })).toMatch(/TROUPE_LLM_PROVIDERS/)
    expect(await bad({ TROUPE_LLM_PROVIDERS: JSON.stringify([{ name: "x", base_url: "ftp://x", models: ["m"] }]) })).toMatch(/TROUPE_LLM_PROVIDERS.*base_url/)
    expect(await bad({ TROUPE_LLM_PROVIDERS: JSON.stringify([{ name: "x", base_url: "http://x/v1", models: [] }]) })).toMatch(/models/)
    expect(await bad({ TROUPE_LLM_PROVIDERS: JSON.stringify([{ name: "x", base_url: "http://x/v1", api_key_env: "NOPE", models: ["m"] }]) })).toMatch(/NOPE.*provider "x"/)
    expect(await bad({ TROUPE_LLM_BASE_URL: "http://127.0.0.1:11434/v1" })).toMatch(/TROUPE_LLM_MODEL/)
    expect(await bad({ TROUPE_LLM_DEFAULT_PRICE: "cheap" })).toMatch(/TROUPE_LLM_DEFAULT_PRICE/)
    expect(await bad({ TROUPE_LLM_MAX_TOOL_ROUNDS: "99" })).toMatch(/TROUPE_LLM_MAX_TOOL_ROUNDS/)
  })

  it("reads the short form; an API key alone means OpenAI; nothing means probing Ollama", async () => {
    const ollama = await read({ TROUPE_LLM_BASE_URL: "http://127.0.0.1:11434/v1", TROUPE_LLM_MODEL: "llama3.2", TROUPE_LLM_CONTEXT_WINDOW: "32768" })
    if (ollama._tag === "Left") throw ollama.left
    expect(ollama.right.source).toBe("short")
    expect(ollama.right.providers[0]).toMatchObject({ name: "default", baseUrl: "http://127.0.0.1:11434/v1", apiKeyEnv: null, models: [{ name: "llama3.2", contextWindow: 32768 }] })
    const openai = await read({ TROUPE_LLM_API_KEY: "sk-x", TROUPE_LLM_MODEL: "gpt-4o-mini", TROUPE_LLM_DEFAULT_PRICE: "0.5/1.5" })
    if (openai._tag === "Left") throw openai.left
    expect(openai.right.providers[0]).toMatchObject({ baseUrl: "https://api.openai.com/v1", apiKeyEnv: "TROUPE_LLM_API_KEY" })
    expect(openai.right.defaultPrice).toEqual({ input: 0.5, output: 1.5 })
    const nothing = await read({})
    if (nothing._tag === "Left") throw nothing.left
    expect(nothing.right.providers).toEqual([])
    expect(nothing.right.ollamaUrl).toEqual(Option.some("http://127.0.0.1:11434"))
    const off = await read({ TROUPE_LLM_OLLAMA_URL: "off" })
    if (off._tag === "Left") throw off.left
    expect(Option.isNone(off.right.ollamaUrl)).toBe(true)
  })

  it("finds Ollama with the probe and answers with its first chat model", async () => {
    const ollama = await Scripted.start({ models: ["nomic-embed-text", "llama3.2:3b", "qwen2.5"] })
    try {
      const settings = Settings.make({ ollamaUrl: Option.some(`http://127.0.0.1:${ollama.port}`) })
      const { result, summary } = await Effect.runPromise(
        Effect.flatMap(Llm.Llm, (llm) => Effect.map(llm.step({ model: "default", prompt }), (result) => ({ result, summary: llm.summary }))).pipe(
          Effect.provide(Llm.layer(settings, { probe: true })),
          Effect.provide(NodeHttpClient.layerUndici)
        )
      )
      expect(summary).toBe(`LLM: ollama (llama3.2:3b) found at http://127.0.0.1:${ollama.port}`)
      expect(result.text).toBe("Hello!")
      expect(ollama.requests.at(-1)!.path).toBe("/v1/chat/completions")
      // nothing listens: no provider, quickly
      const none = await Effect.runPromise(
        Effect.map(Llm.Llm, (llm) => llm.available).pipe(
          Effect.provide(Llm.layer(Settings.make({ ollamaUrl: Option.some(`http://127.0.0.1:${await freePort()}`) }), { probe: true })),
          Effect.provide(NodeHttpClient.layerUndici)
        )
      )
      expect(none).toBe(false)
    } finally {
      await ollama.close()
    }
  })
})
