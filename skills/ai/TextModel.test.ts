/**
 * `text.summarize` and `text.shorten` through the skills service with a model behind them (the
 * scripted server over real HTTP): the model's answer and its reported tokens price the call;
 * a failing provider falls back to the extractive method; no provider leaves them extractive.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Host from "../host/Host.ts"
import * as KvStore from "../host/KvStore.ts"
import * as Skills from "../Skills.ts"
import * as Llm from "./Llm.ts"
import * as Settings from "./Settings.ts"
import * as Scripted from "./testing/ScriptedServer.ts"
import * as TextModel from "./TextModel.ts"

let server: Scripted.ScriptedServer
beforeAll(async () => {
  server = await Scripted.start()
})
afterAll(() => server.close())

const article = "Rust is a systems programming language. Rust guarantees memory safety without a garbage collector. " +
  "Many companies use Rust in production. The weather was nice yesterday. Rust has a friendly compiler."

const invoke = (skill: string, input: unknown, providers: ReadonlyArray<Settings.ProviderSettings>) =>
  Effect.runPromise(
    Effect.flatMap(Skills.Skills, (s) => s.invoke({ app: "text", skill, input, userId: "u" })).pipe(
      Effect.provide(TextModel.layer),
      Effect.provide(Skills.layer().pipe(Layer.provide(Host.layer({ poolSize: 1 })), Layer.provide(KvStore.layerMemory()))),
      Effect.provide(Llm.layer(Settings.make({ providers }))),
      Effect.provide(NodeHttpClient.layerUndici)
    )
  )

const provider = () => [Settings.providerOf({ name: "s", base_url: server.baseUrl, models: ["m"] }, Option.none())]

describe("text skills with a model", () => {
  it("summarizes with the model and prices the call by its tokens", async () => {
    server.enqueue({ ...Scripted.text("Rust is a memory-safe systems language used in production."), usage: { prompt_tokens: 900, completion_tokens: 300 } })
    const r = await invoke("summarize", { text: article, max_sentences: 1 }, provider())
    expect(r.result).toEqual({ summary: "Rust is a memory-safe systems language used in production.", method: "model" })
    // 0.9 × 1 + 0.3 × 2 = 1.5 → 2
    expect(r.credits).toBe(2)
    const sent = server.requests.at(-1)!.body
    expect(sent.messages[0].content).toMatch(/at most 1 sentence/)
    expect(sent.messages[1].content).toBe(article)
  })

  it("shortens with the model", async () => {
    server.enqueue(Scripted.text("Rust: safe, fast, used in production."))
    const r = await invoke("shorten", { text: article, max_length: 60 }, provider())
    expect(r.result).toMatchObject({ text: "Rust: safe, fast, used in production.", method: "model" })
  })

  it("falls back to the extractive method when the provider fails, and without a provider", async () => {
    server.enqueue({ status: 500 })
    const failed = await invoke("summarize", { text: article, max_sentences: 2 }, provider())
    expect(failed.result).toMatchObject({ method: "extractive" })
    const none = await invoke("summarize", { text: article, max_sentences: 2 }, [])
    expect(none.result).toMatchObject({ method: "extractive" })
  })
})
