/**
 * Counting tokens locally (gpt-tokenizer's `cl100k_base`, an approximation for models that are
 * not OpenAI's) and fitting a conversation into a model's context window: the system prompt, the
 * tools and the user's message always stay; the oldest history goes first; the largest tool
 * results are shortened last.
 *
 * The encoding costs ~0.5 s and ~40 MB to load, so it is loaded once, when a provider is
 * configured (`Tokens.layer`), never on the echo or no-provider path.
 */
import * as Tokenizer from "@effect/ai/Tokenizer"
import type * as Prompt from "@effect/ai/Prompt"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as NodeCrypto from "node:crypto"

/** Tokens each message costs besides its text (role and separators, as OpenAI counts them). */
export const perMessage = 4
/** Tokens that prime the answer. */
export const perAnswer = 3

/** The service. */
export class Tokens extends Context.Tag("troupe/skills/ai/Tokens")<Tokens, {
  /** Tokens of a text. */
  readonly count: (text: string) => number
  /** Tokens of the first `tokens` of a text (cut at a token boundary). */
  readonly truncate: (text: string, tokens: number) => string
}>() {}

type Encoding = {
  readonly countTokens: (text: string) => number
  readonly encode: (text: string) => Array<number>
  readonly decode: (tokens: Array<number>) => string
}

/** Texts at least this long have their counts kept, the most recent `keptCounts` of them. */
const keptFrom = 64
const keptCounts = 4096

/** The tokenizer (loads the encoding). */
export const make: Effect.Effect<Tokens["Type"]> = Effect.promise(async () => {
  const encoding = (await import("gpt-tokenizer/encoding/cl100k_base")) as unknown as Encoding
  // a turn counts the same texts again and again (its history and tools, for the estimate and
  // each request, and the next turns): the counts of recent longer texts are kept, by a digest
  // of the text (no chat text stays in memory)
  const counted = new Map<string, number>()
  return {
    count: (text) => {
      if (text.length < keptFrom) return text.length === 0 ? 0 : encoding.countTokens(text)
      const key = NodeCrypto.createHash("sha256").update(text).digest("base64")
      const known = counted.get(key)
      if (known !== undefined) return known
      const n = encoding.countTokens(text)
      if (counted.size >= keptCounts) counted.delete(counted.keys().next().value!)
      counted.set(key, n)
      return n
    },
    truncate: (text, tokens) => {
      const all = encoding.encode(text)
      return all.length <= tokens ? text : encoding.decode(all.slice(0, Math.max(0, tokens)))
    }
  }
})

export const layer: Layer.Layer<Tokens> = Layer.effect(Tokens, make)

/** A rough count without the encoding (about four characters per token), for tests and estimates. */
export const rough: Tokens["Type"] = {
  count: (text) => Math.ceil(text.length / 4),
  truncate: (text, tokens) => text.slice(0, Math.max(0, tokens * 4))
}

/** The same counter as an `@effect/ai` `Tokenizer` (token ids are not kept: counts only). */
export const tokenizer = (tokens: Tokens["Type"]): Tokenizer.Service =>
  Tokenizer.make({
    tokenize: (prompt) => Effect.sync(() => Array.from({ length: promptTokens(tokens, prompt) }, () => 0))
  })

const partText = (part: Prompt.Part): string => {
  switch (part.type) {
    case "text":
    case "reasoning":
      return part.text
    case "tool-call":
      return `${part.name}${JSON.stringify(part.params ?? {})}`
    case "tool-result":
      return typeof part.result === "string" ? part.result : JSON.stringify(part.result)
    default:
      return ""
  }
}

/** Tokens of one message. */
export const messageTokens = (tokens: Tokens["Type"], message: Prompt.Message): number =>
  perMessage + (message.role === "system" ? tokens.count(message.content) : message.content.reduce((n, p) => n + tokens.count(partText(p)), 0))

/** Tokens of a prompt as sent (messages plus the answer's priming). */
export const promptTokens = (tokens: Tokens["Type"], prompt: Prompt.Prompt): number =>
  prompt.content.reduce((n, m) => n + messageTokens(tokens, m), perAnswer)

/** What a turn's prompt is made of. */
export interface Conversation {
  readonly system: ReadonlyArray<Prompt.Message>
  /** Earlier messages, oldest first. */
  readonly history: ReadonlyArray<Prompt.Message>
  /** The user's message and what the turn added since (tool calls and results). */
  readonly current: ReadonlyArray<Prompt.Message>
}

/** How a conversation was fitted. */
export interface Fitted {
  readonly messages: ReadonlyArray<Prompt.Message>
  /** Tokens of the fitted prompt. */
  readonly tokens: number
  /** History messages left out (the oldest). */
  readonly dropped: number
  /** Tool results shortened. */
  readonly shortened: number
  /** Still too long after all that (the user's message alone does not fit). */
  readonly overflow: boolean
}

/**
 * Fit a conversation into `budget` tokens (the context window minus the answer's tokens and the
 * tools' schemas): keep the system messages and the current exchange, add history newest first
 * while it fits, then shorten the largest tool results of the current exchange if still needed.
 */
export const fit = (tokens: Tokens["Type"], conversation: Conversation, budget: number): Fitted => {
  const fixed = [...conversation.system, ...conversation.current]
  let used = perAnswer + fixed.reduce((n, m) => n + messageTokens(tokens, m), 0)
  let current = conversation.current
  let shortened = 0
  if (used > budget) {
    // shorten tool results, largest first, to what is left
    const results: Array<{ readonly mi: number; readonly pi: number; readonly size: number }> = []
    current.forEach((m, mi) => {
      if (m.role === "tool") m.content.forEach((p, pi) => results.push({ mi, pi, size: tokens.count(partText(p)) }))
    })
    results.sort((a, b) => b.size - a.size)
    const copy = current.map((m) => (m.role === "tool" ? { ...m, content: [...m.content] } : m)) as Array<Prompt.Message>
    for (const r of results) {
      if (used <= budget) break
      const excess = used - budget
      const keep = Math.max(32, r.size - excess - 16)
      if (keep >= r.size) continue
      const message = copy[r.mi] as Prompt.ToolMessage
      const part = message.content[r.pi]!
      const text = partText(part)
      const cut = `${tokens.truncate(text, keep)} …[shortened: ${r.size - keep} of ${r.size} tokens left out]`
      ;(message.content as Array<Prompt.ToolResultPart>)[r.pi] = { ...part, result: cut }
      used -= r.size - tokens.count(cut)
      shortened++
    }
    current = copy
  }
  const kept: Array<Prompt.Message> = []
  let dropped = 0
  for (let i = conversation.history.length - 1; i >= 0; i--) {
    const m = conversation.history[i]!
    const n = messageTokens(tokens, m)
    if (used + n > budget) {
      dropped = i + 1
      break
    }
    kept.unshift(m)
    used += n
  }
  return { messages: [...conversation.system, ...kept, ...current], tokens: used, dropped, shortened, overflow: used > budget }
}
