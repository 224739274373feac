/**
 * A built-in `notes` app for tests of `write` skills: `notes.save` (3 credits, side effects `write`)
 * records what it was asked to save in `saved`, once per run.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Manifest from "../../manifest/Manifest.ts"
import * as Skill from "../../Skill.ts"

/** A fresh `notes` app and the list its `save` skill appends to. */
export const make = () => {
  const saved: Array<unknown> = []
  const app = Skill.builtin(
    Either.getOrThrow(Manifest.decode({
      id: "notes",
      name: "Notes",
      version: "1.0.0",
      description: "Notes",
      publisher: "Test",
      abi: "builtin",
      skills: [{
        name: "save",
        description: "Save a note",
        input: { type: "object", properties: { text: { type: "string" } }, required: ["text"], additionalProperties: false },
        output: { type: "object", properties: { saved: { type: "boolean" } }, required: ["saved"] },
        pricing: { model: "fixed", credits: 3 },
        sideEffects: "write"
      }]
    })),
    { save: (input) => Effect.sync(() => (saved.push(input), { result: { saved: true } })) }
  )
  return { app, saved }
}
