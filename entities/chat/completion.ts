/**
 * A conversation handed to a turn whole, as the OpenAI-compatible API receives it: the messages
 * (which may hold the caller's tool calls and their results), the caller's own tools, and the
 * sampling options. It is the same turn as a chat's (the mate's prompt, skills, billing); only the
 * history comes from the request instead of the chat's journal.
 */
import * as Schema from "effect/Schema"

/** A tool call of an earlier assistant message (arguments as the JSON text the model wrote). */
export const CompletionToolCall = Schema.Struct({
  id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)),
  arguments: Schema.String.pipe(Schema.maxLength(100_000))
})
export type CompletionToolCall = typeof CompletionToolCall.Type

/** One message. */
export const CompletionMessage = Schema.Struct({
  role: Schema.Literal("system", "user", "assistant", "tool"),
  text: Schema.String,
  toolCalls: Schema.optional(Schema.Array(CompletionToolCall)),
  /** `tool` messages: the call this answers. */
  toolCallId: Schema.optional(Schema.String)
})
export type CompletionMessage = typeof CompletionMessage.Type

/** A tool of the caller's: offered to the model, called by the caller. */
export const ClientTool = Schema.Struct({
  name: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}$/)),
  description: Schema.String.pipe(Schema.maxLength(4000)),
  parameters: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type ClientTool = typeof ClientTool.Type

/** What the turn gets besides the mate. */
export const Completion = Schema.Struct({
  messages: Schema.Array(CompletionMessage).pipe(Schema.minItems(1), Schema.maxItems(1000)),
  tools: Schema.Array(ClientTool).pipe(Schema.maxItems(128)),
  toolChoice: Schema.optional(Schema.Literal("auto", "none", "required")),
  temperature: Schema.optional(Schema.Number.pipe(Schema.between(0, 2))),
  maxTokens: Schema.optional(Schema.Int.pipe(Schema.between(1, 1_000_000)))
})
export type Completion = typeof Completion.Type
