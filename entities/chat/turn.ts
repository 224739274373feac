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
import type { SpendScope } from "../credit/protocol.ts"

/** What a turn is about. */
export interface TurnInput {
  readonly chatId: string
  readonly turnId: string
  readonly mateId: string
  readonly ownerId: string
  readonly accountId: string
  /** The spend cap the turn's holds count against (an API key's): hold each skill call under it too. */
  readonly scope?: SpendScope
  /** The API key that posted the turn (its skill calls' ledger rows name it too). */
  readonly apiKeyId?: string
  readonly text: string
  /** Earlier messages, oldest first (deleted ones left out), at most the runner's `historyWindow`. */
  readonly history: ReadonlyArray<{ readonly role: "user" | "mate"; readonly text: string }>
  /** Which attempt of the turn this is (1 the first; more after its runner died). */
  readonly attempt?: number
  /** Credits the turn holds (given to `run`: what `estimate` asked, or what an earlier attempt held). */
  readonly budget?: number
}

/** What a turn emits while it works; `cost` reports credits used so far (the last one counts). */
export type TurnEmission =
  | { readonly kind: "delta"; readonly text: string }
  | { readonly kind: "skill_call"; readonly callId: string; readonly app: string; readonly skill: string; readonly input: unknown }
  | { readonly kind: "skill_result"; readonly callId: string; readonly ok: boolean; readonly output: unknown; readonly error: string | null }
  /** A `write` skill waits for the user (`Confirm`) before it runs. */
  | { readonly kind: "confirmation_required"; readonly callId: string; readonly app: string; readonly skill: string; readonly input: unknown; readonly timeoutMs: number }
  | { readonly kind: "confirmation_resolved"; readonly callId: string; readonly approved: boolean; readonly reason: "approved" | "declined" | "timeout" }
  | { readonly kind: "cost"; readonly credits: number }

/** The turn could not be completed; `code` is machine-readable. */
export class TurnFailed extends Schema.TaggedError<TurnFailed>()("TurnFailed", {
  code: Schema.String,
  message: Schema.String
}) {}

/** Hands a turn's emissions, in order, to whoever journals them (synchronously; never blocks). */
export type Emit = (emission: TurnEmission) => void

/** The pluggable turn runner. */
export interface TurnRunnerService {
  /** Credits to hold before the turn starts (the settle charges what was really used, at most this). */
  readonly estimate: (input: TurnInput) => Effect.Effect<number>
  /**
   * Work the turn out, passing each emission to `emit` as it comes; succeeds when the turn is
   * over, fails with `TurnFailed`. Interrupted when the turn is cancelled. (A push interface: one
   * Effect stream run per turn costs ~500 fiber steps before its first element; a runner that
   * has a stream can use `emitStream`.)
   */
  readonly run: (input: TurnInput, emit: Emit) => Effect.Effect<void, TurnFailed>
  /** Pass the user's answer to a `write` skill call the running turn of `chatId` waits for; false when none waits. */
  readonly confirm?: (chatId: string, callId: string, approve: boolean) => Effect.Effect<boolean>
  /** How many earlier messages a turn wants (default 20); the runner fits them to its model. */
  readonly historyWindow?: number
}

/** A file attached to a message, as a mate is given it (text of text files and PDFs; null for others). */
export interface AttachmentText {
  readonly name: string
  readonly contentType: string
  readonly text: string | null
}

/**
 * The files attached to a chat's message (the uploads service provides it on runners; without it
 * a turn sees only the message's text).
 */
export class ChatAttachments extends Context.Tag("troupe/entities/chat/ChatAttachments")<ChatAttachments, {
  readonly ofMessage: (chatId: string, messageId: string) => Effect.Effect<ReadonlyArray<AttachmentText>>
}>() {}

/** A message's text followed by its attachments, each in a delimited block the mate can tell apart. */
export const withAttachments = (text: string, files: ReadonlyArray<AttachmentText>): string =>
  files.length === 0
    ? text
    : [
      text,
      ...files.map((f) =>
        f.text === null
          ? `[Attached file: ${f.name} (${f.contentType}); its content is not readable as text]`
          : `[Attached file: ${f.name} (${f.contentType})]\n${f.text}\n[End of ${f.name}]`
      )
    ].join("\n\n")

/** Run a stream of emissions into `emit`. */
export const emitStream = (stream: Stream.Stream<TurnEmission, TurnFailed>, emit: Emit): Effect.Effect<void, TurnFailed> =>
  Stream.runForEach(stream, (emission) => Effect.sync(() => emit(emission)))

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
  run: (input, emit) => {
    if (input.text.startsWith("/fail")) {
      return Effect.fail(new TurnFailed({ code: "mate_failed", message: "The echo mate was asked to fail" }))
    }
    const words = `You said: ${input.text}`.split(/(?<=\s)/)
    const delay = Duration.toMillis(options.delay)
    // a timer per word and one resumption at the end: no fiber steps per word
    return Effect.async<void>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      let next = 0
      const say = () => {
        emit({ kind: "delta", text: words[next++]! })
        if (next < words.length) {
          timer = setTimeout(say, delay)
          return
        }
        emit({ kind: "cost", credits: echoCost(input.text) })
        resume(Effect.void)
      }
      say()
      return Effect.sync(() => clearTimeout(timer))
    })
  }
})

/** The echo mate as the turn runner. */
export const layerEcho = (options: { readonly delay: Duration.DurationInput } = { delay: "15 millis" }): Layer.Layer<TurnRunner> =>
  Layer.succeed(TurnRunner, makeEcho(options))
