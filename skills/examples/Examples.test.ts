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

  it("vendor the same SDK as the template", async () => {
    const sdk = await NodeFs.readFile(NodePath.join(Project.TEMPLATE_DIR, "assembly", "troupe.ts"), "utf8")
    for (const name of EXAMPLES) {
      expect(await NodeFs.readFile(NodePath.join(import.meta.dirname, name, "assembly", "troupe.ts"), "utf8")).toBe(sdk)
    }
  })
})
