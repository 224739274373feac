/**
 * The skills service as the gateway uses it: list and describe apps, estimate, invoke first-party
 * and WASM skills through one path, typed errors with their HTTP status and code.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { describe as describeError } from "./Errors.ts"
import * as Text from "./firstparty/Text.ts"
import * as Host from "./host/Host.ts"
import * as KvStore from "./host/KvStore.ts"
import * as Skills from "./Skills.ts"
import { fixturesDir } from "../runtime/testing/fixtures.ts"

const FIXTURES = NodePath.join(fixturesDir(), "extism")
const fixture = (file: string) => new Uint8Array(NodeFs.readFileSync(NodePath.join(FIXTURES, file)))

let runtime: ManagedRuntime.ManagedRuntime<Skills.Skills, never>
beforeAll(() => {
  runtime = ManagedRuntime.make(Skills.layer().pipe(Layer.provide(Host.layer({ poolSize: 1 })), Layer.provide(KvStore.layerMemory())))
})
afterAll(async () => {
  await runtime.dispose()
})

const run = <A, E>(f: (skills: Skills.Skills["Type"]) => Effect.Effect<A, E>) => runtime.runPromise(Effect.flatMap(Skills.Skills, f))
const fail = <A, E>(f: (skills: Skills.Skills["Type"]) => Effect.Effect<A, E>) => runtime.runPromise(Effect.flip(Effect.flatMap(Skills.Skills, f)))

const article = "Rust is a systems programming language. Rust guarantees memory safety without a garbage collector. " +
  "Many companies use Rust in production. The weather was nice yesterday. Rust has a friendly compiler."

describe("skills service", () => {
  it("lists the first-party apps with schemas and prices", async () => {
    const apps = await run((s) => s.list)
    const ids = apps.flatMap((a) => a.skills.map((k) => k.id))
    expect(ids).toEqual(expect.arrayContaining(["text.summarize", "text.shorten", "math.calculate"]))
    const calc = apps.find((a) => a.id === "math")!.skills[0]!
    expect(calc).toMatchObject({ price: "0 credits per call", side_effects: "read", requires_confirmation: false })
    expect(calc.input).toMatchObject({ required: ["expression"] })
  })

  it("answers not-found errors for unknown apps and skills", async () => {
    expect(describeError(await fail((s) => s.get("nope")))).toMatchObject({ status: 404, code: "app_not_found" })
    expect(describeError(await fail((s) => s.describeSkill("math", "integrate")))).toMatchObject({ status: 404, code: "skill_not_found" })
  })

  it("estimates before the call and validates the input then, so nothing is reserved for bad input", async () => {
    const estimate = await run((s) => s.estimate({ app: "text", skill: "summarize", input: { text: article } }))
    expect(estimate).toMatchObject({ credits: 3, sideEffects: "read" })
    const bad = await fail((s) => s.estimate({ app: "text", skill: "summarize", input: { text: "", extra: 1 } }))
    expect(describeError(bad)).toMatchObject({
      status: 400,
      code: "invalid_input",
      details: { issues: expect.arrayContaining([{ path: "text", message: "must NOT have fewer than 1 characters" }, { path: "extra", message: "is not allowed" }]) }
    })
  })

  it("invokes first-party skills and charges no more than the estimate", async () => {
    const summary = await run((s) => s.invoke({ app: "text", skill: "summarize", input: { text: article, max_sentences: 2 }, userId: "u1" }))
    expect(summary.result).toMatchObject({ method: "extractive", sentences: 2, total_sentences: 5 })
    expect((summary.result as { summary: string }).summary).not.toContain("weather")
    expect(summary.credits).toBeLessThanOrEqual(summary.estimate)
    const calc = await run((s) => s.invoke({ app: "math", skill: "calculate", input: { expression: "2^10 / 4" }, userId: "u1" }))
    expect(calc).toMatchObject({ result: { expression: "2^10 / 4", result: 256 }, credits: 0, estimate: 0 })
    const bad = await fail((s) => s.invoke({ app: "math", skill: "calculate", input: { expression: "2 +* 3" }, userId: "u1" }))
    expect(describeError(bad)).toMatchObject({ code: "invalid_input", details: { issues: [{ path: "expression" }] } })
  })

  it("uses a text model when one is provided, priced by its token counts, and falls back without it failing", async () => {
    const model = (fails: boolean) =>
      Layer.succeed(Text.TextGenerator, {
        summarize: () => fails ? Effect.fail(new Text.TextGeneratorError({ message: "down" })) : Effect.succeed({ text: "Rust is safe.", inputTokens: 3000, outputTokens: 10 }),
        shorten: () => Effect.fail(new Text.TextGeneratorError({ message: "unused" }))
      })
    const invoke = (fails: boolean) =>
      runtime.runPromise(
        Effect.flatMap(Skills.Skills, (s) => s.invoke({ app: "text", skill: "summarize", input: { text: article }, userId: "u1" })).pipe(Effect.provide(model(fails)))
      )
    expect(await invoke(false)).toMatchObject({ result: { summary: "Rust is safe.", method: "model" }, credits: 3, usage: { inputTokens: 3000, outputTokens: 10 } })
    expect(await invoke(true)).toMatchObject({ result: { method: "extractive" } })
  })

  it("registers a WASM app from a manifest and runs it through the same path", async () => {
    const manifest = {
      id: "rusty",
      name: "Rusty",
      version: "1.0.0",
      description: "A third-party plugin",
      publisher: "extism",
      abi: "extism-v1",
      limits: { timeoutMs: 2000 },
      skills: [{
        name: "hello",
        description: "Says hello",
        input: { type: "string" },
        output: { type: "string" },
        pricing: { model: "per_second", creditsPerSecond: 10, minimumCredits: 1 },
        sideEffects: "read"
      }]
    }
    const app = await run((s) => s.registerWasm(manifest, [{ name: "main", bytes: fixture("hello-from-rust.wasm") }]))
    expect(app).toMatchObject({ id: "rusty", kind: "wasm", skills: [{ id: "rusty.hello", price: "10 credits per second (minimum 1 credit)", timeout_ms: 2000 }] })
    const result = await run((s) => s.invoke({ app: "rusty", skill: "hello", input: "Hi!", userId: "u1" }))
    expect(result).toMatchObject({ result: "\"Hi!\"\nHello from Rust!", estimate: 20 })
    expect(result.credits).toBeGreaterThanOrEqual(1)
    expect(result.credits).toBeLessThanOrEqual(20)
    expect((await run((s) => s.list)).map((a) => a.id)).toContain("rusty")
  })

  it("refuses bad WASM apps at registration: invalid manifest with its path, or a module that does not match", async () => {
    const manifest = (skill: string) => ({
      id: "loopy",
      name: "Loopy",
      version: "1.0.0",
      description: "x",
      publisher: "x",
      abi: "extism-v1",
      limits: { timeoutMs: 200 },
      skills: [{ name: skill, description: "x", input: {}, output: {}, pricing: { model: "fixed", credits: 1 }, sideEffects: "read" }]
    })
    expect(describeError(await fail((s) => s.registerWasm({ ...manifest("loop"), version: "x" }, [])))).toMatchObject({
      code: "invalid_manifest",
      details: { issues: [{ path: "version" }] }
    })
    const mismatch = await fail((s) => s.registerWasm(manifest("spin"), [{ name: "main", bytes: fixture("loop-forever.wasm") }]))
    expect(describeError(mismatch)).toMatchObject({ code: "admission_rejected", message: expect.stringContaining("does not export the function spin") })
    await run((s) => s.registerWasm(manifest("loop"), [{ name: "main", bytes: fixture("loop-forever.wasm") }]))
    const timeout = await fail((s) => s.invoke({ app: "loopy", skill: "loop", input: {}, userId: "u1" }))
    expect(describeError(timeout)).toMatchObject({ status: 504, code: "skill_timeout", details: { skill: "loopy.loop", timeout_ms: 200 } })
  })
})
