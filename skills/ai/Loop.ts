/**
 * A mate's turn with a model: the conversation fitted to the model's context, the answer streamed,
 * the mate's skills offered as tools and the model's tool calls run, round after round, until the
 * model answers without calling anything or `maxToolRounds` rounds are used (the last request
 * then offers no tools, so the model has to answer).
 *
 * Tool calls of one model step run in parallel, each with its own timeout and (inside the
 * `SkillInvoker`) its own credit hold. Nothing the model asks for runs unchecked: a tool outside
 * the mate's allowlist gets a tool error (`skill_not_allowed`), arguments that are not JSON or do
 * not match the skill's schema get one too, and a `write` skill waits for the user's confirmation.
 *
 * The turn's token cost (`cost` emissions) is exact for what was used: the provider's reported
 * usage per request, or a local count when it reports none; when the turn is cancelled or a
 * provider fails mid-answer, the prompt that was sent and the output received until then.
 */
import * as Prompt from "@effect/ai/Prompt"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import type * as ChatCompletions from "./ChatCompletions.ts"
import type * as Llm from "./Llm.ts"
import * as Prices from "./Prices.ts"
import type { Price } from "./Settings.ts"
import * as Tokens from "./Tokens.ts"

/** A skill offered to the model. */
export interface ToolDef {
  /** `<app>__<skill>`, as the model sees it. */
  readonly name: string
  readonly app: string
  readonly skill: string
  readonly description: string
  readonly parameters: Record<string, unknown>
  readonly sideEffects: "read" | "write"
  readonly timeoutMs: number
}

/** A skill call that failed; `code` is machine-readable (`skill_timeout`, `invalid_input` …). */
export class ToolError extends Schema.TaggedError<ToolError>()("ToolError", {
  code: Schema.String,
  message: Schema.String
}) {}

/** Runs the mate's skills: each call with its own credit hold, settled or released on its own. */
export interface SkillInvoker {
  /** Check the arguments before anything runs (schema, size, price). */
  readonly validate: (tool: ToolDef, input: unknown) => Effect.Effect<void, ToolError>
  /** Run one call (hold, run, settle / release); `callId` is unique within the turn. */
  readonly invoke: (tool: ToolDef, input: unknown, callId: string) => Effect.Effect<{ readonly output: unknown; readonly credits: number }, ToolError>
}

/** The user's answer to a `write` skill call. */
export type Confirmation = "approved" | "declined" | "timeout"

/** What the loop tells the turn, in order. */
export type LoopEvent =
  | { readonly kind: "delta"; readonly text: string }
  | { readonly kind: "skill_call"; readonly callId: string; readonly app: string; readonly skill: string; readonly input: unknown }
  | { readonly kind: "skill_result"; readonly callId: string; readonly ok: boolean; readonly output: unknown; readonly error: string | null }
  | { readonly kind: "confirmation_required"; readonly callId: string; readonly app: string; readonly skill: string; readonly input: unknown; readonly timeoutMs: number }
  | { readonly kind: "confirmation_resolved"; readonly callId: string; readonly approved: boolean; readonly reason: Confirmation }
  /** Credits used so far (whole; the last one counts). */
  | { readonly kind: "cost"; readonly credits: number }

/** Everything the loop uses. */
export interface LoopDeps {
  readonly llm: Llm.Llm["Type"]
  readonly tokens: Tokens.Tokens["Type"]
  readonly priceOf: (model: string) => Effect.Effect<Price>
  readonly invoker: SkillInvoker
  /** Wait for the user's answer to a `write` call (the turn relays `POST /v1/chats/{id}/confirm`). */
  readonly confirm: (callId: string, timeout: Duration.Duration) => Effect.Effect<Confirmation>
  readonly maxToolRounds: number
  readonly confirmTimeout: Duration.Duration
}

/** A message of the chat before this turn. */
export interface HistoryMessage {
  readonly role: "user" | "mate"
  readonly text: string
}

/** What a turn asks. */
export interface LoopInput {
  readonly model: string
  readonly systemPrompt: string
  readonly history: ReadonlyArray<HistoryMessage>
  readonly text: string
  /** The tools the mate's allowlist grants (nothing else runs). */
  readonly tools: ReadonlyArray<ToolDef>
  readonly temperature?: number
  readonly maxTokens?: number
  /** Credits held for the turn's tokens: no round starts that could cost more. */
  readonly budget?: number
  /**
   * A conversation given whole (the OpenAI-compatible API): more system messages, and the
   * messages before and from the last user message on (they may hold the caller's tool calls and
   * results). Replaces `history` and `text`.
   */
  readonly conversation?: {
    readonly system: ReadonlyArray<string>
    readonly history: ReadonlyArray<Prompt.Message>
    readonly current: ReadonlyArray<Prompt.Message>
  }
  /**
   * The caller's own tools (the OpenAI-compatible API): offered to the model, never run here. When
   * the model calls one, the turn ends and returns the calls (`clientToolCalls`).
   */
  readonly clientTools?: ReadonlyArray<ChatCompletions.ToolSpec>
  /**
   * Call ids are `<prefix>c<n>`, numbered from 1 in the order the model asked: a turn's attempt
   * gives its prefix (`a2`), so each attempt's skill holds have keys that can be found again.
   */
  readonly callIdPrefix?: string
  /** Called once per model request with the provider's first token (time-to-first-token). */
  readonly onFirstToken?: (provider: string) => void
}

/** What the loop produced. */
export interface LoopResult {
  readonly text: string
  /** Calls of the caller's own tools the model made (the turn ended there). */
  readonly clientToolCalls: ReadonlyArray<Llm.ToolCall>
  readonly finishReason: "stop" | "length" | "tool_calls"
  /** Whole credits for the tokens. */
  readonly credits: number
  readonly rounds: number
  readonly usage: Prices.TokenUsage
}

/** The turn could not finish; `credits` were used until then. */
export class LoopFailed extends Schema.TaggedError<LoopFailed>()("LoopFailed", {
  code: Schema.String,
  message: Schema.String,
  credits: Schema.Number
}) {}

/** Calls of one model step at most (more get a tool error). */
export const maxParallelCalls = 8

/** The function name a tool gets: `<app>__<skill>`, within OpenAI's `^[a-zA-Z0-9_-]{1,64}$`. */
export const toolName = (app: string, skill: string): string => {
  const name = `${app.replace(/[^A-Za-z0-9_-]/g, "-")}__${skill.replace(/[^A-Za-z0-9_-]/g, "-")}`
  if (name.length <= 64) return name
  let h = 0
  for (const c of name) h = (Math.imul(h, 31) + c.charCodeAt(0)) | 0
  return `${name.slice(0, 55)}_${(h >>> 0).toString(36)}`
}

/** The conversation's fixed part: the system prompt, the history as messages. */
const conversationOf = (input: LoopInput): Tokens.Conversation => {
  const system = [input.systemPrompt, ...(input.conversation?.system ?? [])]
    .filter((s) => s.trim().length > 0)
    .map((content) => Prompt.makeMessage("system", { content }))
  if (input.conversation) return { system, history: input.conversation.history, current: input.conversation.current }
  return { system, history: historyOf(input), current: [Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: input.text })] })] }
}

const historyOf = (input: LoopInput): ReadonlyArray<Prompt.Message> => input.history.map((m) =>
    m.role === "user"
      ? Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: m.text })] })
      : Prompt.makeMessage("assistant", { content: [Prompt.makePart("text", { text: m.text })] })
  )

/** The tokens tools add to a request (counted locally as the turn counts them). */
export const toolsTokens = (tokens: Tokens.Tokens["Type"], tools: ReadonlyArray<ChatCompletions.ToolSpec>): number =>
  tools.reduce((n, t) => n + tokens.count(`${t.name} ${t.description} ${JSON.stringify(t.parameters)}`) + 8, 0)

/** The context budget of a model for a prompt (what is left for messages). */
const budgetOf = (model: { readonly contextWindow: number; readonly maxOutputTokens: number }, toolTokens: number) =>
  model.contextWindow - model.maxOutputTokens - toolTokens

/**
 * Credits to hold for a turn: its first prompt and a full answer, for the first request and for
 * up to two tool rounds, at the model's price.
 */
export const estimate = (deps: Pick<LoopDeps, "llm" | "tokens" | "priceOf" | "maxToolRounds">, input: LoopInput): Effect.Effect<number> =>
  Effect.gen(function*() {
    const resolved = deps.llm.resolve(input.model)
    if (resolved._tag === "None" || resolved.value.candidates.length === 0) return 0
    const prices = yield* Effect.forEach(resolved.value.candidates, (c) => deps.priceOf(c.model.name))
    const model = resolved.value.candidates[0]!.model
    const price = { input: Math.max(...prices.map((p) => p.input)), output: Math.max(...prices.map((p) => p.output)) }
    const specs = [...input.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters })), ...(input.clientTools ?? [])]
    const tt = toolsTokens(deps.tokens, specs)
    const fitted = Tokens.fit(deps.tokens, conversationOf(input), budgetOf(model, tt))
    const rounds = 1 + Math.min(deps.maxToolRounds, 2)
    const inputTokens = Math.min(model.contextWindow, fitted.tokens + tt + 1000) * rounds
    return Prices.whole(Prices.creditsOf(price, { inputTokens, outputTokens: model.maxOutputTokens * rounds }))
  })

const errorResult = (code: string, message: string) => ({ error: { code, message } })

/** Run the turn; `emit` gets every event synchronously, in order. */
export const run = (deps: LoopDeps, input: LoopInput, emit: (event: LoopEvent) => void): Effect.Effect<LoopResult, LoopFailed> => {
  const conversation = conversationOf(input)
  const byName = new Map(input.tools.map((t) => [t.name, t]))
  const clientNames = new Set((input.clientTools ?? []).map((t) => t.name))
  const specs: ReadonlyArray<ChatCompletions.ToolSpec> = [
    ...input.tools.filter((t) => !clientNames.has(t.name)).map((t) => ({ name: t.name, description: t.description, parameters: t.parameters })),
    ...(input.clientTools ?? [])
  ]
  const toolTokens = toolsTokens(deps.tokens, specs)
  /** Credits of finished requests (fractional), and of the one running. */
  let spent = 0
  let running = 0
  const usage = { inputTokens: 0, outputTokens: 0 }
  let reported = -1
  const report = () => {
    const credits = Prices.whole(spent + running)
    if (credits !== reported) {
      reported = credits
      emit({ kind: "cost", credits })
    }
    return credits
  }
  let reply = ""
  let callSeq = 0

  const runCall = (call: Llm.ToolCall, callId: string) => runOne(deps, byName, call, callId, emit)

  const loop = Effect.gen(function*() {
    const current: Array<Prompt.Message> = [...conversation.current]
    for (let round = 0; ; round++) {
      const withTools = specs.length > 0 && round < deps.maxToolRounds
      const resolved = deps.llm.resolve(input.model)
      const model = resolved._tag === "Some" && resolved.value.candidates[0] ? resolved.value.candidates[0].model : undefined
      const contextWindow = model?.contextWindow ?? 8192
      const maxOutput = model?.maxOutputTokens ?? 1024
      const fitted = Tokens.fit(deps.tokens, { ...conversation, current }, contextWindow - maxOutput - (withTools ? toolTokens : 0))
      if (fitted.overflow) {
        return yield* new LoopFailed({ code: "context_exceeded", message: `The message and what the turn added (${fitted.tokens} tokens) do not fit the model's context of ${contextWindow} tokens`, credits: report() })
      }
      const promptTokens = fitted.tokens + (withTools ? toolTokens : 0)
      let streamed = ""
      const separate = round > 0 && reply.length > 0 && !/\s$/.test(reply)
      let first = true
      const step = yield* deps.llm.step(
        { model: input.model, prompt: Prompt.fromMessages(fitted.messages), ...(withTools ? { tools: specs } : {}), ...(input.temperature !== undefined ? { temperature: input.temperature } : {}), ...(input.maxTokens !== undefined ? { maxTokens: input.maxTokens } : {}) },
        (part) => {
          if (part.type === "text-delta" && part.delta.length > 0) {
            if (first) {
              first = false
              if (separate) {
                reply += "\n\n"
                emit({ kind: "delta", text: "\n\n" })
              }
            }
            reply += part.delta
            streamed += part.delta
            emit({ kind: "delta", text: part.delta })
          } else if (part.type === "tool-params-delta") {
            streamed += part.delta
          }
        }
      ).pipe(
        Effect.onExit((exit) =>
          Exit.isSuccess(exit)
            ? Effect.void
            : Effect.gen(function*() {
              // a request cut short (cancel, failure mid-answer): the prompt sent and the output received
              if (streamed.length === 0 && Exit.isFailure(exit) && !Exit.isInterrupted(exit)) return
              const p = model ? yield* deps.priceOf(model.name) : deps.llm.settings.defaultPrice
              const out = deps.tokens.count(streamed)
              usage.inputTokens += promptTokens
              usage.outputTokens += out
              running = Prices.creditsOf(p, { inputTokens: promptTokens, outputTokens: out })
              report()
            })
        ),
        Effect.mapError((e) => new LoopFailed({ code: e.code, message: e.message, credits: Prices.whole(spent + running) }))
      )
      if (input.onFirstToken) input.onFirstToken(step.provider)
      const price = yield* deps.priceOf(step.model.name)
      const inputTokens = step.usage.inputTokens ?? promptTokens
      const outputTokens = step.usage.outputTokens ??
        (deps.tokens.count(step.text) + step.toolCalls.reduce((n, c) => n + deps.tokens.count(`${c.name}${typeof c.params === "string" ? c.params : JSON.stringify(c.params)}`), 0))
      usage.inputTokens += inputTokens
      usage.outputTokens += outputTokens
      spent += Prices.creditsOf(price, { inputTokens, outputTokens })
      running = 0
      report()

      const finishReason = step.finishReason === "length" ? "length" as const : "stop" as const
      if (step.toolCalls.length === 0 || !withTools) {
        return { text: reply, clientToolCalls: [], finishReason, credits: Prices.whole(spent), rounds: round + 1, usage: { ...usage } }
      }
      const forCaller = step.toolCalls.filter((c) => clientNames.has(c.name))
      if (forCaller.length > 0) {
        // the caller runs these; the mate's calls of the same step are not run (the caller echoes only its own)
        return { text: reply, clientToolCalls: forCaller, finishReason: "tool_calls" as const, credits: Prices.whole(spent), rounds: round + 1, usage: { ...usage } }
      }
      const calls = step.toolCalls.map((call) => ({ call, callId: `${input.callIdPrefix ?? ""}c${++callSeq}` }))
      current.push(Prompt.makeMessage("assistant", {
        content: [
          ...(step.text.length > 0 ? [Prompt.makePart("text", { text: step.text })] : []),
          ...calls.map(({ call }) => Prompt.makePart("tool-call", { id: call.id, name: call.name, params: call.params, providerExecuted: false }))
        ]
      }))
      const results = yield* Effect.forEach(
        calls,
        ({ call, callId }, i) =>
          i >= maxParallelCalls
            ? Effect.sync(() => {
              emit({ kind: "skill_call", callId, app: call.name, skill: "", input: call.params })
              emit({ kind: "skill_result", callId, ok: false, output: null, error: `too_many_calls: at most ${maxParallelCalls} calls per step` })
              return errorResult("too_many_calls", `at most ${maxParallelCalls} tool calls per step; call the others in the next step`)
            })
            : runCall(call, callId),
        { concurrency: "unbounded" }
      )
      current.push(Prompt.makeMessage("tool", {
        content: calls.map(({ call }, i) => Prompt.makePart("tool-result", { id: call.id, name: call.name, result: results[i], isFailure: isError(results[i]), providerExecuted: false }))
      }))
      // a budget that cannot pay for another full request ends the tool rounds: the next one answers without tools
      if (input.budget !== undefined && model) {
        const worst = Prices.creditsOf(price, { inputTokens: contextWindow, outputTokens: maxOutput })
        if (Prices.whole(spent + worst) > input.budget && round + 1 < deps.maxToolRounds) {
          return yield* finalAnswer(current, round + 1)
        }
      }
    }
  })

  /** One last request without tools (the budget allows no more tool rounds). */
  const finalAnswer = (current: ReadonlyArray<Prompt.Message>, rounds: number) =>
    Effect.gen(function*() {
      const fitted = Tokens.fit(deps.tokens, { ...conversation, current }, 1 << 30)
      const step = yield* deps.llm.step({ model: input.model, prompt: Prompt.fromMessages(fitted.messages) }, (part) => {
        if (part.type === "text-delta" && part.delta.length > 0) {
          reply += part.delta
          emit({ kind: "delta", text: part.delta })
        }
      }).pipe(Effect.mapError((e) => new LoopFailed({ code: e.code, message: e.message, credits: Prices.whole(spent) })))
      const price = yield* deps.priceOf(step.model.name)
      const inputTokens = step.usage.inputTokens ?? fitted.tokens
      const outputTokens = step.usage.outputTokens ?? deps.tokens.count(step.text)
      usage.inputTokens += inputTokens
      usage.outputTokens += outputTokens
      spent += Prices.creditsOf(price, { inputTokens, outputTokens })
      report()
      return {
        text: reply,
        clientToolCalls: [],
        finishReason: step.finishReason === "length" ? "length" as const : "stop" as const,
        credits: Prices.whole(spent),
        rounds: rounds + 1,
        usage: { ...usage }
      }
    })

  return loop
}

const isError = (result: unknown): boolean => typeof result === "object" && result !== null && "error" in result && Object.keys(result).length === 1

/**
 * One tool call, checked before it runs: the allowlist (`tools`), JSON-object arguments, the
 * skill's schema, the user's confirmation for a `write` skill; then the skill with its own hold and
 * timeout. Emits `skill_call` and `skill_result`; the value is what goes back to the model.
 */
export const runCall = (
  deps: Pick<LoopDeps, "invoker" | "confirm" | "confirmTimeout">,
  tools: ReadonlyArray<ToolDef>,
  call: Llm.ToolCall,
  callId: string,
  emit: (event: LoopEvent) => void
): Effect.Effect<unknown> => runOne(deps, new Map(tools.map((t) => [t.name, t])), call, callId, emit)

const runOne = (
  deps: Pick<LoopDeps, "invoker" | "confirm" | "confirmTimeout">,
  byName: ReadonlyMap<string, ToolDef>,
  call: Llm.ToolCall,
  callId: string,
  emit: (event: LoopEvent) => void
): Effect.Effect<unknown> =>
  Effect.gen(function*() {
    const tool = byName.get(call.name)
    const [app, skill] = tool ? [tool.app, tool.skill] : call.name.includes("__") ? call.name.split("__", 2) as [string, string] : [call.name, ""]
    emit({ kind: "skill_call", callId, app, skill, input: call.params })
    const fail = (code: string, message: string) => {
      emit({ kind: "skill_result", callId, ok: false, output: null, error: `${code}: ${message}` })
      return errorResult(code, message)
    }
    if (!tool) return fail("skill_not_allowed", `${call.name} is not one of this mate's skills; use only the tools offered`)
    if (typeof call.params !== "object" || call.params === null || Array.isArray(call.params)) {
      return fail("invalid_arguments", `the arguments of ${call.name} must be a JSON object${typeof call.params === "string" ? ` (got text that is not JSON)` : ""}`)
    }
    const invalid = yield* Effect.flip(deps.invoker.validate(tool, call.params)).pipe(Effect.option)
    if (invalid._tag === "Some") return fail(invalid.value.code, invalid.value.message)
    if (tool.sideEffects === "write") {
      emit({ kind: "confirmation_required", callId, app, skill, input: call.params, timeoutMs: Duration.toMillis(deps.confirmTimeout) })
      const answer = yield* deps.confirm(callId, deps.confirmTimeout)
      emit({ kind: "confirmation_resolved", callId, approved: answer === "approved", reason: answer })
      if (answer === "declined") return fail("confirmation_declined", `the user declined ${app}.${skill}`)
      if (answer === "timeout") return fail("confirmation_timeout", `the user did not confirm ${app}.${skill} within ${Duration.format(deps.confirmTimeout)}`)
    }
    const outcome = yield* deps.invoker.invoke(tool, call.params, callId).pipe(
      Effect.timeoutFail({
        duration: tool.timeoutMs + 1000,
        onTimeout: () => new ToolError({ code: "skill_timeout", message: `${app}.${skill} did not finish within ${tool.timeoutMs} ms` })
      }),
      Effect.either
    )
    if (outcome._tag === "Left") return fail(outcome.left.code, outcome.left.message)
    emit({ kind: "skill_result", callId, ok: true, output: outcome.right.output, error: null })
    return outcome.right.output
  })
