/**
 * The `text` app's skills: `summarize` and `shorten`. Without a language model they are
 * extractive (they pick the sentences that carry the most frequent content words); when a
 * `TextGenerator` is provided (the AI issue wires one to the configured LLM) they use it and fall
 * back to the extractive method if it fails.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { SkillContext, SkillOutput } from "../Skill.ts"

/** A model failed; the skill falls back to the extractive method. */
export class TextGeneratorError extends Schema.TaggedError<TextGeneratorError>()("TextGeneratorError", {
  message: Schema.String
}) {}

/** What a model produced, with its token counts (they price the call). */
export interface Generated {
  readonly text: string
  readonly inputTokens: number
  readonly outputTokens: number
}

/** The seam for a language model behind `text.summarize` and `text.shorten`. */
export class TextGenerator extends Context.Tag("troupe/skills/firstparty/TextGenerator")<TextGenerator, {
  readonly summarize: (text: string, options: { readonly maxSentences: number }) => Effect.Effect<Generated, TextGeneratorError>
  readonly shorten: (text: string, options: { readonly maxLength: number }) => Effect.Effect<Generated, TextGeneratorError>
}>() {}

const STOPWORDS = new Set(
  ("a about above after again against all am an and any are as at be because been before being below between both but by can " +
    "could did do does doing down during each few for from further had has have having he her here hers herself him himself his how " +
    "i if in into is it its itself just me more most my myself no nor not now of off on once only or other our ours ourselves out " +
    "over own same she should so some such than that the their theirs them themselves then there these they this those through to " +
    "too under until up very was we were what when where which while who whom why will with would you your yours yourself " +
    "yourselves also may might must shall us").split(" ")
)

const sentenceSegmenter = new Intl.Segmenter("en", { granularity: "sentence" })
const wordSegmenter = new Intl.Segmenter("en", { granularity: "word" })
const graphemeSegmenter = new Intl.Segmenter("en", { granularity: "grapheme" })

/** The text's sentences, whitespace-normalised, paragraph breaks respected. */
export const sentences = (text: string): Array<string> =>
  text
    .split(/\n\s*\n/)
    .flatMap((paragraph) => [...sentenceSegmenter.segment(paragraph.replace(/\s+/g, " ").trim())].map((s) => s.segment.trim()))
    .filter((s) => s.length > 0)

const words = (sentence: string): Array<string> =>
  [...wordSegmenter.segment(sentence.toLowerCase())].filter((w) => w.isWordLike).map((w) => w.segment)

/** Length in user-perceived characters. */
export const length = (text: string): number => {
  let n = 0
  for (const _ of graphemeSegmenter.segment(text)) n++
  return n
}

/** Sentence indexes from most to least representative. */
export const rank = (all: ReadonlyArray<string>): Array<number> => {
  const frequency = new Map<string, number>()
  const perSentence = all.map((s) => words(s).filter((w) => !STOPWORDS.has(w) && !/^\d+$/.test(w)))
  for (const ws of perSentence) for (const w of ws) frequency.set(w, (frequency.get(w) ?? 0) + 1)
  const scores = perSentence.map((ws, i) => {
    if (ws.length === 0) return { i, score: 0 }
    const content = ws.reduce((sum, w) => sum + (frequency.get(w) ?? 0), 0) / Math.sqrt(ws.length)
    const position = i === 0 ? 1.5 : i === 1 ? 1.15 : 1
    return { i, score: content * position }
  })
  return scores.sort((a, b) => b.score - a.score || a.i - b.i).map((s) => s.i)
}

/** The `maxSentences` most representative sentences, in their original order. */
export const extractiveSummary = (text: string, maxSentences: number): { readonly summary: string; readonly selected: number; readonly total: number } => {
  const all = sentences(text)
  if (all.length <= maxSentences) return { summary: all.join(" "), selected: all.length, total: all.length }
  const chosen = rank(all).slice(0, maxSentences).sort((a, b) => a - b)
  return { summary: chosen.map((i) => all[i]).join(" "), selected: chosen.length, total: all.length }
}

const truncate = (text: string, maxLength: number): string => {
  const graphemes = [...graphemeSegmenter.segment(text)].map((g) => g.segment)
  if (graphemes.length <= maxLength) return text
  const cut = graphemes.slice(0, maxLength - 1).join("")
  const atWord = cut.replace(/\s+\S*$/, "")
  return `${(atWord.length >= cut.length * 0.6 ? atWord : cut).replace(/[\s,;:.-]+$/, "")}…`
}

/** The text within `maxLength` characters: whole sentences when possible, else cut at a word. */
export const extractiveShorten = (text: string, maxLength: number): string => {
  const normalised = sentences(text).join(" ")
  if (length(normalised) <= maxLength) return normalised
  const all = sentences(text)
  const kept: Array<number> = []
  let used = 0
  for (const i of rank(all)) {
    const n = length(all[i]!) + (kept.length > 0 ? 1 : 0)
    if (used + n <= maxLength) {
      kept.push(i)
      used += n
    }
  }
  if (kept.length === 0) return truncate(normalised, maxLength)
  return kept.sort((a, b) => a - b).map((i) => all[i]).join(" ")
}

interface SummarizeInput {
  readonly text: string
  readonly max_sentences?: number
}

interface ShortenInput {
  readonly text: string
  readonly max_length?: number
}

const withModel = <A>(
  use: (generator: TextGenerator["Type"]) => Effect.Effect<A, TextGeneratorError>,
  fallback: () => A
): Effect.Effect<A> =>
  Effect.flatMap(Effect.serviceOption(TextGenerator), (generator) =>
    Option.match(generator, {
      onNone: () => Effect.sync(fallback),
      onSome: (g) =>
        use(g).pipe(
          Effect.catchAll((e) => Effect.as(Effect.logWarning(`text model failed, using the extractive fallback: ${e.message}`), fallback()))
        )
    }))

/** `text.summarize`. */
export const summarize = (input: unknown, _context: SkillContext): Effect.Effect<SkillOutput> => {
  const { max_sentences: maxSentences = 3, text } = input as SummarizeInput
  return withModel<SkillOutput>(
    (g) =>
      Effect.map(g.summarize(text, { maxSentences }), (out) => ({
        result: { summary: out.text, method: "model" },
        usage: { inputTokens: out.inputTokens, outputTokens: out.outputTokens }
      })),
    () => {
      const s = extractiveSummary(text, maxSentences)
      return { result: { summary: s.summary, method: "extractive", sentences: s.selected, total_sentences: s.total } }
    }
  )
}

/** `text.shorten`. */
export const shorten = (input: unknown, _context: SkillContext): Effect.Effect<SkillOutput> => {
  const { max_length: maxLength = 280, text } = input as ShortenInput
  return withModel<SkillOutput>(
    (g) =>
      Effect.map(g.shorten(text, { maxLength }), (out) => {
        const shortened = length(out.text) <= maxLength ? out.text : extractiveShorten(out.text, maxLength)
        return {
          result: { text: shortened, length: length(shortened), method: "model" },
          usage: { inputTokens: out.inputTokens, outputTokens: out.outputTokens }
        }
      }),
    () => {
      const shortened = extractiveShorten(text, maxLength)
      return { result: { text: shortened, length: length(shortened), method: "extractive" } }
    }
  )
}
