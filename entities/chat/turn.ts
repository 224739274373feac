/**
 * The work of a turn — the mate thinking and calling skills — behind one service, so the Chat
 * entity does not care who answers. Until an LLM provider is configured the built-in echo mate
 * answers, which makes the whole path (journal, streaming, credits, cancel) testable.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

/** What a turn is about. */
export interface TurnInput {
  readonly chatId: string
  readonly turnId: string
  readonly mateId: string
  readonly ownerId: string
  readonly accountId: string
  readonly text: string
  /** Earlier messages, oldest first (deleted ones left out). */
  readonly history: ReadonlyArray<{ readonly role: "user" | "mate"; readonly text: string }>
}

/** What a turn emits while it works; `cost` reports credits used so far (the last one counts). */
export type TurnEmission =
  | { readonly kind: "delta"; readonly text: string }
  | { readonly kind: "skill_call"; readonly callId: string; readonly app: string; readonly skill: string; readonly input: unknown }
  | { readonly kind: "skill_result"; readonly callId: string; readonly ok: boolean; readonly output: unknown; readonly error: string | null }
  | { readonly kind: "cost"; readonly credits: number }

/** The turn could not be completed; `code` is machine-readable. */
export class TurnFailed extends Schema.TaggedError<TurnFailed>()("TurnFailed", {
  code: Schema.String,
  message: Schema.String
}) {}

/** The pluggable turn runner. */
export interface TurnRunnerService {
  /** Credits to hold before the turn starts (the settle charges what was really used, at most this). */
  readonly estimate: (input: TurnInput) => Effect.Effect<number>
  readonly run: (input: TurnInput) => Stream.Stream<TurnEmission, TurnFailed>
}

/** The turn runner tag. */
export class TurnRunner extends Context.Tag("troupe/entities/chat/TurnRunner")<TurnRunner, TurnRunnerService>() {}

/** Credits the echo mate charges for a reply: one, plus one per started 1,000 characters. */
export const echoCost = (text: string) => 1 + Math.floor(text.length / 1000)

/**
 * The echo mate: answers "You said: <text>" word by word, `delay` apart. A message starting with
 * `/fail` makes it fail (to exercise the failure path).
 */
export const makeEcho = (options: { readonly delay: Duration.DurationInput }): TurnRunnerService => ({
  estimate: (input) => Effect.succeed(echoCost(input.text) + 1),
  run: (input) => {
    if (input.text.startsWith("/fail")) {
      return Stream.fail(new TurnFailed({ code: "mate_failed", message: "The echo mate was asked to fail" }))
    }
    const words = `You said: ${input.text}`.split(/(?<=\s)/)
    return Stream.fromIterable(words).pipe(
      Stream.zipWithIndex,
      Stream.mapEffect(([word, i]) => (i === 0 ? Effect.succeed(word) : Effect.as(Effect.sleep(options.delay), word))),
      Stream.map((text): TurnEmission => ({ kind: "delta", text })),
      Stream.concat(Stream.succeed<TurnEmission>({ kind: "cost", credits: echoCost(input.text) }))
    )
  }
})

/** The echo mate as the turn runner. */
export const layerEcho = (options: { readonly delay: Duration.DurationInput } = { delay: "15 millis" }): Layer.Layer<TurnRunner> =>
  Layer.succeed(TurnRunner, makeEcho(options))
