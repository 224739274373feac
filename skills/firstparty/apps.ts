/**
 * The first-party apps: `text` (summarize, shorten), `math` (calculate) and `web` (read). Their manifests follow
 * the same schema as third-party ones (with `abi: "builtin"`) and are priced the same way.
 */
import * as Either from "effect/Either"
import * as Manifest from "../manifest/Manifest.ts"
import * as Skill from "../Skill.ts"
import * as Calculator from "./Calculator.ts"
import * as Text from "./Text.ts"
import * as Web from "./Web.ts"

const manifest = (input: Manifest.AppManifestInput): Manifest.AppManifest =>
  Either.getOrThrowWith(Manifest.decode(input), (e) => new Error(`first-party manifest ${input.id}: ${e.message}`))

const textInput = {
  type: "string",
  minLength: 1,
  maxLength: 200_000,
  description: "The text (plain text; any language, best on English)."
}

/** The `text` app. */
export const text: Skill.App = Skill.builtin(
  manifest({
    id: "text",
    name: "Text",
    version: "1.0.0",
    description: "Summarize and shorten text.",
    publisher: "Troupe",
    abi: "builtin",
    limits: { memoryMb: 64, timeoutMs: 30_000, maxInputBytes: 1024 * 1024, maxOutputBytes: 256 * 1024 },
    skills: [
      {
        name: "summarize",
        description:
          "Summarize a text in a few sentences. Use it when the user asks for a summary, the gist or the key points of a long text.",
        input: {
          type: "object",
          properties: {
            text: textInput,
            max_sentences: { type: "integer", minimum: 1, maximum: 20, default: 3, description: "How many sentences the summary may have." }
          },
          required: ["text"],
          additionalProperties: false
        },
        output: {
          type: "object",
          properties: {
            summary: { type: "string" },
            method: { enum: ["model", "extractive"] },
            sentences: { type: "integer" },
            total_sentences: { type: "integer" }
          },
          required: ["summary", "method"]
        },
        pricing: { model: "tokens", creditsPer1kInput: 1, creditsPer1kOutput: 2, maxOutputTokens: 1000 },
        sideEffects: "read"
      },
      {
        name: "shorten",
        description:
          "Shorten a text to at most max_length characters, keeping its most important sentences. Use it to fit a text into a tweet, a title or a preview.",
        input: {
          type: "object",
          properties: {
            text: textInput,
            max_length: { type: "integer", minimum: 10, maximum: 10_000, default: 280, description: "The most characters the result may have." }
          },
          required: ["text"],
          additionalProperties: false
        },
        output: {
          type: "object",
          properties: { text: { type: "string" }, length: { type: "integer" }, method: { enum: ["model", "extractive"] } },
          required: ["text", "length", "method"]
        },
        pricing: { model: "tokens", creditsPer1kInput: 1, creditsPer1kOutput: 2, maxOutputTokens: 2500 },
        sideEffects: "read"
      }
    ]
  }),
  { summarize: Text.summarize, shorten: Text.shorten }
)

/** The `math` app. */
export const math: Skill.App = Skill.builtin(
  manifest({
    id: "math",
    name: "Math",
    version: "1.0.0",
    description: "Exact arithmetic, so the LLM does not have to guess.",
    publisher: "Troupe",
    abi: "builtin",
    limits: { memoryMb: 16, timeoutMs: 1_000, maxInputBytes: 4096, maxOutputBytes: 4096 },
    skills: [
      {
        name: "calculate",
        description:
          "Evaluate an arithmetic expression exactly, e.g. \"(17.5 * 3 + 2^10) / 7\" or \"sqrt(2) * sin(pi / 4)\". Supports + - * / % ^ !, parentheses, pi, e, and functions sqrt, cbrt, abs, exp, ln, log(x[, base]), log2, sin, cos, tan, asin, acos, atan, atan2, floor, ceil, round(x[, digits]), min, max, hypot, pow. Use it for any calculation.",
        input: {
          type: "object",
          properties: { expression: { type: "string", minLength: 1, maxLength: 1000 } },
          required: ["expression"],
          additionalProperties: false
        },
        output: {
          type: "object",
          properties: { expression: { type: "string" }, result: { type: "number" } },
          required: ["expression", "result"]
        },
        pricing: { model: "fixed", credits: 0 },
        sideEffects: "read"
      }
    ]
  }),
  { calculate: Calculator.calculate }
)

/** The `web` app. */
export const web: Skill.App = Skill.builtin(
  manifest({
    id: "web",
    name: "Web",
    version: "1.0.0",
    description: "Read web pages.",
    publisher: "Troupe",
    abi: "builtin",
    limits: { memoryMb: 64, timeoutMs: 15_000, maxInputBytes: 4096, maxOutputBytes: 256 * 1024 },
    skills: [
      {
        name: "read",
        description:
          "Fetch a public web page and return its title and readable text (article or main content, without navigation and scripts). Use it when the user shares a link or asks about the content of a page.",
        input: {
          type: "object",
          properties: {
            url: { type: "string", format: "uri", pattern: "^https?://", maxLength: 2048, description: "The page's http(s) URL." },
            max_chars: { type: "integer", minimum: 200, maximum: 50_000, default: 20_000, description: "The most characters of text to return." }
          },
          required: ["url"],
          additionalProperties: false
        },
        output: {
          type: "object",
          properties: {
            url: { type: "string", description: "The page's URL after redirects." },
            title: { type: "string" },
            text: { type: "string" },
            truncated: { type: "boolean" },
            length: { type: "integer", description: "Characters of text before truncation." }
          },
          required: ["url", "title", "text", "truncated", "length"]
        },
        pricing: { model: "fixed", credits: 1 },
        sideEffects: "read"
      }
    ]
  }),
  { read: Web.read }
)

/** Every first-party app. */
export const apps: ReadonlyArray<Skill.App> = [text, math, web]
