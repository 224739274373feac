/**
 * The skills layer as a runner wires it: first-party apps, the host, and the KV store in the
 * embedded database (PGlite), configured from the environment.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Migrations from "../runtime/Migrations.ts"
import * as PgliteClient from "../runtime/PgliteClient.ts"
import * as SkillsConfig from "./Config.ts"
import * as KvStore from "./host/KvStore.ts"
import * as Project from "./sdk/Project.ts"
import * as Skills from "./Skills.ts"

const NOTES = NodePath.join(import.meta.dirname, "examples", "notes")

let runtime: ManagedRuntime.ManagedRuntime<Skills.Skills, unknown>
let notesWasm: Uint8Array
let out: string

beforeAll(async () => {
  out = await NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "troupe-notes-"))
  notesWasm = await Effect.runPromise(Project.compileSource(NOTES, "assembly/index.ts", NodePath.join(out, "notes.wasm"), { optimize: "debug" }))
  const options = await Effect.runPromise(
    Effect.withConfigProvider(SkillsConfig.fromEnv, ConfigProvider.fromMap(new Map([["TROUPE_SKILLS_POOL_SIZE", "1"], ["TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS", "127.0.0.1:9999"]])))
  )
  expect(options).toMatchObject({ poolSize: 1, allowedPrivateHosts: ["127.0.0.1:9999"], idleTimeoutMs: 60_000 })
  const database = PgliteClient.layer({ dataDir: undefined })
  const migrated = Layer.provideMerge(Layer.effectDiscard(Migrations.run(KvStore.migrations)), database)
  runtime = ManagedRuntime.make(Skills.layerSql(options).pipe(Layer.provide(migrated)))
})

afterAll(async () => {
  await runtime?.dispose()
  await NodeFs.rm(out, { recursive: true, force: true })
})

describe("skills on the embedded database", () => {
  it("runs a WASM app whose notes persist in SQL, per user", async () => {
    const manifest = JSON.parse(await NodeFs.readFile(NodePath.join(NOTES, "manifest.json"), "utf8"))
    const secrets = { vault_key: "k" }
    const result = await runtime.runPromise(Effect.gen(function*() {
      const skills = yield* Skills.Skills
      yield* skills.registerWasm(manifest, [{ name: "main", bytes: notesWasm }])
      yield* skills.invoke({ app: "notes", skill: "remember", input: { key: "k1", text: "héllo" }, userId: "ada", installId: "i1", secrets })
      const mine = yield* skills.invoke({ app: "notes", skill: "recall", input: { key: "k1" }, userId: "ada", installId: "i1", secrets })
      const theirs = yield* skills.invoke({ app: "notes", skill: "recall", input: { key: "k1" }, userId: "bob", installId: "i1", secrets })
      return { mine: mine.result, theirs: theirs.result }
    }))
    expect(result.mine).toEqual({ key: "k1", text: "héllo", verified: true })
    expect(result.theirs).toEqual({ key: "k1", text: null, verified: false })
  })

  it("serves the first-party apps too", async () => {
    const calc = await runtime.runPromise(Effect.flatMap(Skills.Skills, (s) => s.invoke({ app: "math", skill: "calculate", input: { expression: "3!" }, userId: "ada" })))
    expect(calc.result).toEqual({ expression: "3!", result: 6 })
  })
})
