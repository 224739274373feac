/**
 * The mates that think: the `ai` app's turn runner. A turn is one of three things:
 *
 * - `/<app>.<skill> {json}` — an explicit invocation: the skill runs (allowlist, confirmation and
 *   billing as for the model's calls) and its result is the reply. Works with or without a provider.
 * - no provider configured — the mate answers with how to configure one.
 * - otherwise the tool loop (`Loop.ts`): the mate's prompt, the history fitted to the model's
 *   context, the allowed skills as tools, streamed deltas.
 *
 * The runner is written against small interfaces (`MateDirectory`, `TurnSkills`, `Confirmations`)
 * so the chat entity, the skills registry and the credit holds plug in where the process is
 * assembled.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { Completion } from "../../entities/chat/completion.ts"
import * as Prompt from "@effect/ai/Prompt"
import * as Llm from "./Llm.ts"
import * as Loop from "./Loop.ts"
import { Prices } from "./Prices.ts"
import * as Tokens from "./Tokens.ts"

/** What a turn needs to know of its mate. */
export interface MateInfo {
  readonly name: string
  readonly systemPrompt: string
  readonly model: string
  /** `app`, `app.skill` or `app.*` entries. */
  readonly allowedSkills: ReadonlyArray<string>
}

/** The mate could not be found (deleted meanwhile). */
export class MateUnavailable extends Schema.TaggedError<MateUnavailable>()("MateUnavailable", { message: Schema.String }) {}

/** Finds a chat's mate. */
export class MateDirectory extends Context.Tag("troupe/skills/ai/MateDirectory")<MateDirectory, {
  readonly get: (ownerId: string, mateId: string) => Effect.Effect<MateInfo, MateUnavailable>
}>() {}

/** Who a turn's skill calls are for and who pays. */
export interface TurnIdentity {
  readonly chatId: string
  readonly turnId: string
  readonly ownerId: string
  readonly accountId: string
  /** The key every hold of this turn starts with (the turn's own hold key). */
  readonly holdKey: string
  /** A spend cap the turn's holds count against (an API key's). */
  readonly scope?: { readonly id: string; readonly cap: number }
  /** The API key behind the turn, if any (named on its skill calls' ledger rows). */
  readonly apiKeyId?: string
}

/** The skills of a turn: which ones the allowlist offers, and running them with their own holds. */
export class TurnSkills extends Context.Tag("troupe/skills/ai/TurnSkills")<TurnSkills, {
  /** The tools an allowlist grants, from the skills registry. */
  readonly tools: (allowlist: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Loop.ToolDef>>
  /** The skill invoker for one turn (holds keyed `<turn.holdKey>:<call id>`). */
  readonly invoker: (turn: TurnIdentity) => Loop.SkillInvoker
  /**
   * Close the holds earlier attempts of the turn left open (their runner died mid-call): released,
   * so nothing is charged for a call whose result never reached the turn. Returns how many.
   */
  readonly recover: (turn: TurnIdentity, attempt: number) => Effect.Effect<number>
}>() {}

/** The user's answers to `write` skill calls, delivered to the running turn (same process as the chat). */
export class Confirmations extends Context.Tag("troupe/skills/ai/Confirmations")<Confirmations, {
  /** Wait for the answer to `callId` of `chatId`'s running turn, at most `timeout`. */
  readonly await: (chatId: string, callId: string, timeout: Duration.Duration) => Effect.Effect<Loop.Confirmation>
  /** Deliver an answer; false when no turn waits for that call. */
  readonly resolve: (chatId: string, callId: string, approve: boolean) => Effect.Effect<boolean>
}>() {}

/** Confirmations in this process's memory (turns run where their chat lives). */
export const layerConfirmations: Layer.Layer<Confirmations> = Layer.sync(Confirmations, () => {
  const waiting = new Map<string, (answer: Loop.Confirmation) => void>()
  return {
    await: (chatId, callId, timeout) =>
      Effect.async<Loop.Confirmation>((resume) => {
        const key = `${chatId}\u0000${callId}`
        const timer = setTimeout(() => {
          waiting.delete(key)
          resume(Effect.succeed("timeout"))
        }, Duration.toMillis(timeout))
        waiting.set(key, (answer) => {
          clearTimeout(timer)
          waiting.delete(key)
          resume(Effect.succeed(answer))
        })
        return Effect.sync(() => {
          clearTimeout(timer)
          waiting.delete(key)
        })
      }),
    resolve: (chatId, callId, approve) =>
      Effect.sync(() => {
        const answer = waiting.get(`${chatId}\u0000${callId}`)
        if (!answer) return false
        answer(approve ? "approved" : "declined")
        return true
      })
  }
})

/** Does an allowlist grant `app.skill`? */
export const allows = (allowlist: ReadonlyArray<string>, app: string, skill: string): boolean =>
  allowlist.some((entry) => entry === app || entry === `${app}.*` || entry === `${app}.${skill}`)

/** An explicit invocation: `/<app>.<skill>` and an optional JSON object. */
export const parseInvocation = (text: string): Option.Option<{ readonly app: string; readonly skill: string; readonly json: string }> => {
  const m = /^\/([a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*)\.([A-Za-z0-9_-]{1,64})(?:\s+([\s\S]*))?$/.exec(text.trim())
  return m ? Option.some({ app: m[1]!, skill: m[2]!, json: (m[3] ?? "").trim() }) : Option.none()
}

/** What the mate says when no provider is configured. */
export const setupHelp = (mate: string) =>
  `${mate} cannot think yet: no language model is configured on this server. An administrator can connect one and restart Troupe:\n\n` +
  "- Ollama on the same machine: `ollama pull llama3.2` (Troupe looks for Ollama at 127.0.0.1:11434 when it starts), or " +
  "`TROUPE_LLM_BASE_URL=http://127.0.0.1:11434/v1 TROUPE_LLM_MODEL=llama3.2`\n" +
  "- OpenAI: `TROUPE_LLM_API_KEY=sk-… TROUPE_LLM_MODEL=gpt-4o-mini`\n" +
  "- any OpenAI-compatible server, or several with failover: `TROUPE_LLM_PROVIDERS` (see the README)\n\n" +
  "Skills work already: send `/<app>.<skill> {json}`, for example `/math.calculate {\"expression\": \"2^10 / 8\"}`."

/** A turn as the runner sees it. */
export interface MateTurn extends TurnIdentity {
  /** Which attempt (1 the first; a restart after its runner died is the next). */
  readonly attempt?: number
  readonly mateId: string
  readonly text: string
  readonly history: ReadonlyArray<Loop.HistoryMessage>
  /** A conversation handed over whole (the OpenAI-compatible API). */
  readonly completion?: Completion
  /** Credits the turn holds for its tokens (its hold, made from `estimate`); without it the run estimates again. */
  readonly budget?: number
}

/** What a turn tells its chat (the chat journals it; `cost` = credits for tokens so far). */
export type MateEvent = Loop.LoopEvent

/** How a turn ended. */
export interface MateResult {
  readonly credits: number
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number }
  readonly clientToolCalls: ReadonlyArray<{ readonly id: string; readonly name: string; readonly arguments: string }>
  readonly finishReason: "stop" | "length" | "tool_calls"
}

/** A turn that could not finish (`credits` were used until then). */
export class MateFailed extends Schema.TaggedError<MateFailed>()("MateFailed", {
  code: Schema.String,
  message: Schema.String,
  credits: Schema.Number
}) {}

const fence = (value: unknown) => "```json\n" + JSON.stringify(value, null, 2) + "\n```"

/** The completion's messages as the loop's conversation (the last user message starts `current`). */
export const conversationOf = (completion: Completion): NonNullable<Loop.LoopInput["conversation"]> => {
  const system: Array<string> = []
  const messages: Array<Prompt.Message> = []
  for (const m of completion.messages) {
    switch (m.role) {
      case "system":
        system.push(m.text)
        break
      case "user":
        messages.push(Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: m.text })] }))
        break
      case "assistant":
        messages.push(Prompt.makeMessage("assistant", {
          content: [
            ...(m.text.length > 0 ? [Prompt.makePart("text", { text: m.text })] : []),
            ...(m.toolCalls ?? []).map((c) => Prompt.makePart("tool-call", { id: c.id, name: c.name, params: parseJson(c.arguments), providerExecuted: false }))
          ]
        }))
        break
      case "tool":
        messages.push(Prompt.makeMessage("tool", {
          content: [Prompt.makePart("tool-result", { id: m.toolCallId ?? "", name: nameOfCall(completion, m.toolCallId), result: m.text, isFailure: false, providerExecuted: false })]
        }))
        break
    }
  }
  const lastUser = messages.map((m) => m.role).lastIndexOf("user")
  return { system, history: messages.slice(0, lastUser), current: messages.slice(lastUser) }
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const nameOfCall = (completion: Completion, id: string | undefined): string => {
  for (const m of completion.messages) for (const c of m.toolCalls ?? []) if (c.id === id) return c.name
  return "tool"
}

/** Build the runner from its services. */
export const make = Effect.gen(function*() {
  const llm = yield* Llm.Llm
  // the encoding is loaded only when there is a model to count for
  const tokens = llm.available ? yield* Tokens.make : undefined
  const prices = yield* Prices
  const directory = yield* MateDirectory
  const skills = yield* TurnSkills
  const confirmations = yield* Confirmations

  const depsFor = (turn: MateTurn): Loop.LoopDeps => ({
    llm,
    tokens: tokens!,
    priceOf: prices.priceOf,
    invoker: skills.invoker(turn),
    confirm: (callId, timeout) => confirmations.await(turn.chatId, callId, timeout),
    maxToolRounds: llm.settings.maxToolRounds,
    confirmTimeout: llm.settings.confirmTimeout
  })

  const loopInput = (turn: MateTurn, mate: MateInfo, tools: ReadonlyArray<Loop.ToolDef>): Loop.LoopInput => ({
    model: mate.model,
    systemPrompt: mate.systemPrompt,
    history: turn.history,
    text: turn.text,
    tools,
    ...(turn.completion
      ? {
        conversation: conversationOf(turn.completion),
        clientTools: turn.completion.tools,
        ...(turn.completion.temperature !== undefined ? { temperature: turn.completion.temperature } : {}),
        ...(turn.completion.maxTokens !== undefined ? { maxTokens: turn.completion.maxTokens } : {})
      }
      : {})
  })

  /**
   * The mate and tools a turn's estimate read, left for its run a moment later (one lookup of the
   * mate per turn); keyed by the turn's attempt, taken by the run, dropped after a minute unused.
   */
  const prepared = new Map<string, { readonly at: number; readonly mate: MateInfo; readonly tools: ReadonlyArray<Loop.ToolDef> }>()
  const preparedKey = (turn: MateTurn) => `${turn.chatId}\u0000${turn.turnId}\u0000${turn.attempt ?? 1}`

  /** Credits to hold for a turn's tokens (skill calls hold their own). */
  const estimate = (turn: MateTurn): Effect.Effect<number> =>
    Effect.gen(function*() {
      if (!llm.available || (!turn.completion && Option.isSome(parseInvocation(turn.text)))) return 0
      const mate = yield* Effect.option(directory.get(turn.ownerId, turn.mateId))
      if (Option.isNone(mate)) return 0
      const tools = yield* skills.tools(mate.value.allowedSkills)
      const now = Date.now()
      for (const [key, entry] of prepared) {
        if (now - entry.at < 60_000) break
        prepared.delete(key)
      }
      prepared.set(preparedKey(turn), { at: now, mate: mate.value, tools })
      return yield* estimateOf(loopInput(turn, mate.value, tools))
    })

  const estimateOf = (input: Loop.LoopInput) =>
    Loop.estimate({ llm, tokens: tokens!, priceOf: prices.priceOf, maxToolRounds: llm.settings.maxToolRounds }, input)

  const explicit = (turn: MateTurn, mate: MateInfo, call: { readonly app: string; readonly skill: string; readonly json: string }, emit: (e: MateEvent) => void) =>
    Effect.gen(function*() {
      const say = (text: string) => emit({ kind: "delta", text })
      const done: MateResult = { credits: 0, usage: { inputTokens: 0, outputTokens: 0 }, clientToolCalls: [], finishReason: "stop" }
      let input: unknown = {}
      if (call.json.length > 0) {
        try {
          input = JSON.parse(call.json)
        } catch {
          say(`\`${call.app}.${call.skill}\` needs a JSON object after its name, e.g. \`/${call.app}.${call.skill} {"key": "value"}\`; this is not JSON: ${call.json.slice(0, 200)}`)
          return done
        }
      }
      const tools = yield* skills.tools(mate.allowedSkills)
      const tool = tools.find((t) => t.app === call.app && t.skill === call.skill)
      const callId = `a${turn.attempt ?? 1}x`
      if (!tool) {
        emit({ kind: "skill_call", callId, app: call.app, skill: call.skill, input })
        emit({ kind: "skill_result", callId, ok: false, output: null, error: `skill_not_allowed: ${mate.name} may not use ${call.app}.${call.skill}` })
        say(`${mate.name} may not use \`${call.app}.${call.skill}\`${mate.allowedSkills.length > 0 ? ` (allowed: ${mate.allowedSkills.join(", ")})` : " (it has no skills; add them to its allowed skills)"}.`)
        return done
      }
      const deps = depsFor(turn)
      // the loop's own call path: allowlist, validation, confirmation, hold, timeout
      const outcome = yield* Effect.gen(function*() {
        let result: unknown
        let ok = true
        const observe = (e: MateEvent) => {
          if (e.kind === "skill_result") {
            ok = e.ok
            result = e.ok ? e.output : e.error
          }
          emit(e)
        }
        yield* Loop.runCall(deps, tools, { id: callId, name: tool.name, params: input }, callId, observe)
        return { ok, result }
      })
      say(outcome.ok ? `\`${call.app}.${call.skill}\`:\n\n${fence(outcome.result)}` : `\`${call.app}.${call.skill}\` failed: ${String(outcome.result)}`)
      return done
    })

  const run = (turn: MateTurn, emit: (event: MateEvent) => void): Effect.Effect<MateResult, MateFailed> =>
    Effect.gen(function*() {
      if ((turn.attempt ?? 1) > 1) {
        const closed = yield* skills.recover(turn, turn.attempt ?? 1)
        if (closed > 0) yield* Effect.logInfo("Released skill holds of the turn's earlier attempts").pipe(Effect.annotateLogs({ turn: turn.turnId, holds: closed }))
      }
      const ready = prepared.get(preparedKey(turn))
      if (ready) prepared.delete(preparedKey(turn))
      const mate = ready ? ready.mate : yield* directory.get(turn.ownerId, turn.mateId).pipe(
        Effect.mapError((e) => new MateFailed({ code: "mate_not_found", message: e.message, credits: 0 }))
      )
      const invocation = turn.completion ? Option.none() : parseInvocation(turn.text)
      if (Option.isSome(invocation)) return yield* explicit(turn, mate, invocation.value, emit)
      if (!llm.available) {
        emit({ kind: "delta", text: setupHelp(mate.name) })
        return { credits: 0, usage: { inputTokens: 0, outputTokens: 0 }, clientToolCalls: [], finishReason: "stop" as const }
      }
      const tools = ready ? ready.tools : yield* skills.tools(mate.allowedSkills)
      const input = loopInput(turn, mate, tools)
      const budget = turn.budget ?? Math.max(1, yield* estimateOf(input))
      // the loop keeps within its budget; a provider that reports more than it could still be charged the hold
      const capped = (event: MateEvent) => emit(event.kind === "cost" ? { kind: "cost", credits: Math.min(event.credits, budget) } : event)
      const result = yield* Loop.run(depsFor(turn), { ...input, budget, callIdPrefix: `a${turn.attempt ?? 1}` }, capped).pipe(
        Effect.mapError((e) => new MateFailed({ code: e.code, message: e.message, credits: Math.min(e.credits, budget) }))
      )
      return {
        credits: Math.min(result.credits, budget),
        usage: result.usage,
        clientToolCalls: result.clientToolCalls.map((c) => ({ id: c.id, name: c.name, arguments: typeof c.params === "string" ? c.params : JSON.stringify(c.params) })),
        finishReason: result.finishReason
      }
    })

  return { estimate, run, available: llm.available }
})

/** The runner of this process. */
export type Runner = Effect.Effect.Success<typeof make>

/** The mate runner as a service (chats' turns and completions share it). */
export class MateRunner extends Context.Tag("troupe/skills/ai/MateRunner")<MateRunner, Runner>() {}

/** The runner from its services. */
export const layerRunner: Layer.Layer<MateRunner, never, Llm.Llm | Prices | MateDirectory | TurnSkills | Confirmations> = Layer.effect(MateRunner, make)
