/**
 * `text.summarize` and `text.shorten` through the configured model: the `TextGenerator` seam of
 * the first-party text app, answered by the default model with failover like any turn. Without
 * a provider the layer provides nothing and the skills stay extractive.
 */
import * as Prompt from "@effect/ai/Prompt"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { TextGenerator, TextGeneratorError } from "../firstparty/Text.ts"
import * as Llm from "./Llm.ts"
import * as Tokens from "./Tokens.ts"

const generate = (llm: Llm.Llm["Type"], tokens: Tokens.Tokens["Type"], system: string, text: string, maxTokens: number) =>
  Effect.gen(function*() {
    const prompt = Prompt.make([{ role: "system", content: system }, { role: "user", content: text }])
    const step = yield* llm.step({ model: "default", prompt, temperature: 0.2, maxTokens }).pipe(
      Effect.mapError((e) => new TextGeneratorError({ message: e.message }))
    )
    const answer = step.text.trim()
    if (answer.length === 0) return yield* new TextGeneratorError({ message: "the model answered nothing" })
    return {
      text: answer,
      inputTokens: step.usage.inputTokens ?? Tokens.promptTokens(tokens, prompt),
      outputTokens: step.usage.outputTokens ?? tokens.count(step.text)
    }
  })

/** A `TextGenerator` over `llm`. */
export const make = (llm: Llm.Llm["Type"], tokens: Tokens.Tokens["Type"]): TextGenerator["Type"] => ({
  summarize: (text, { maxSentences }) =>
    generate(
      llm,
      tokens,
      `Summarize the user's text in at most ${maxSentences} sentence${maxSentences === 1 ? "" : "s"}, in the text's own language. ` +
        "Answer with the summary only: no preamble, no heading, no list.",
      text,
      Math.min(1000, 80 * maxSentences)
    ),
  shorten: (text, { maxLength }) =>
    generate(
      llm,
      tokens,
      `Rewrite the user's text in at most ${maxLength} characters, keeping its most important information and its language. ` +
        "Answer with the shortened text only.",
      text,
      Math.min(2500, Math.ceil(maxLength / 2) + 16)
    )
})

/**
 * The text generator when a provider is configured, nothing otherwise: the text skills look for it
 * with `Effect.serviceOption` and stay extractive without it, so the layer promises nothing in its type.
 */
export const layer: Layer.Layer<never, never, Llm.Llm> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const llm = yield* Llm.Llm
    if (!llm.available) return Layer.empty
    // the encoding module is loaded once per process, whoever asks first
    return Layer.succeed(TextGenerator, make(llm, yield* Tokens.make)) as Layer.Layer<never>
  })
)
