/**
 * Lines the parts of a process add to its ready message while they start (e.g. which LLM
 * provider answers). The role prints them with "ready" once everything is up.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** The notes of this process. */
export class ReadyNotes extends Context.Tag("troupe/runtime/ReadyNotes")<ReadyNotes, {
  readonly add: (line: string) => Effect.Effect<void>
  readonly lines: Effect.Effect<ReadonlyArray<string>>
}>() {}

/** An empty list of notes. */
export const layer: Layer.Layer<ReadyNotes> = Layer.sync(ReadyNotes, () => {
  const lines: Array<string> = []
  return { add: (line) => Effect.sync(() => void lines.push(line)), lines: Effect.sync(() => [...lines]) }
})

/** Add a note (a no-op where the process keeps none). */
export const add = (line: string): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(ReadyNotes), (notes) => (notes._tag === "Some" ? notes.value.add(line) : Effect.void))
