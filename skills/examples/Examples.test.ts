/**
 * The example skills and the `skill new` template are built from source (asc, as `troupe skill
 * build` does) and their tests.json pass in our host, through the same registry as production.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { describe, expect, it } from "vitest"
import * as Host from "../host/Host.ts"
import * as KvStore from "../host/KvStore.ts"
import * as Project from "../sdk/Project.ts"

const EXAMPLES = ["template", "greeter", "notes"]

describe("example skills", () => {
  for (const name of EXAMPLES) {
    it(`${name}: builds from source and passes its tests in our host`, async () => {
      const dir = NodePath.join(import.meta.dirname, name)
      const report = await Effect.runPromise(
        Effect.gen(function*() {
          const built = yield* Project.build(dir)
          const cases = yield* Project.readTests(built.project)
          const results = yield* Effect.scoped(
            Project.runTests(built, cases).pipe(Effect.provide(Host.layer({ poolSize: 1 }).pipe(Layer.provide(KvStore.layerMemory()))))
          )
          return { cases: cases.length, failed: results.filter((r) => !r.ok) }
        })
      )
      expect(report.cases).toBeGreaterThan(0)
      expect(report.failed).toEqual([])
    })
  }

  it("use the SDK's one source by path (no copy of it here)", async () => {
    for (const name of EXAMPLES) {
      const assembly = NodePath.join(import.meta.dirname, name, "assembly")
      expect(await NodeFs.readdir(assembly)).not.toContain("troupe.ts")
      expect(await NodeFs.readFile(NodePath.join(assembly, "index.ts"), "utf8")).toContain(`from "../../../sdk/assembly/troupe"`)
    }
    expect(NodePath.relative(NodePath.join(import.meta.dirname, "template", "assembly"), Project.SDK_SOURCE)).toBe(NodePath.join("..", "..", "..", "sdk", "assembly", "troupe.ts"))
  })
})
