/**
 * The `web` app's `read` skill: fetch a page through `runtime/SafeFetch.ts` (public addresses
 * only, every redirect hop re-checked, a byte and a time cap) and return its readable text —
 * the `<article>` or `<main>` when there is one, without scripts, styles, navigation and forms —
 * so a mate can read a link the user pastes. Text is capped at `max_chars`.
 *
 * `WebSettings` (optional) carries the operator's private-host allowlist
 * (`TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS`), as for WASM plugins' egress.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { parseHTML } from "linkedom"
import { safeFetch } from "../../runtime/SafeFetch.ts"
import { SkillEgressDenied, SkillFailed } from "../Errors.ts"
import type { RunError } from "../Errors.ts"
import type { SkillContext, SkillOutput } from "../Skill.ts"

/** How `web.read` fetches. */
export class WebSettings extends Context.Tag("troupe/skills/firstparty/WebSettings")<WebSettings, {
  /** `host:port` origins that may resolve to private addresses. */
  readonly allowedPrivateHosts: ReadonlyArray<string>
  readonly maxBytes: number
  readonly timeoutMs: number
}>() {}

export const defaultSettings: WebSettings["Type"] = { allowedPrivateHosts: [], maxBytes: 2 * 1024 * 1024, timeoutMs: 10_000 }

const readable = new Set(["text/html", "application/xhtml+xml", "text/plain"])

const skipped = "script, style, noscript, template, svg, iframe, object, embed, canvas, nav, footer, form, button, select, aside, [hidden], [aria-hidden=true]"

const blocks = new Set([
  "ADDRESS", "ARTICLE", "BLOCKQUOTE", "BR", "DD", "DIV", "DL", "DT", "FIGCAPTION", "FIGURE", "H1", "H2", "H3", "H4", "H5", "H6",
  "HEADER", "HR", "LI", "MAIN", "OL", "P", "PRE", "SECTION", "TABLE", "TD", "TH", "TR", "UL"
])

interface Node {
  readonly nodeType: number
  readonly nodeName: string
  readonly textContent: string | null
  readonly childNodes: ArrayLike<Node>
}

/** The text of an element, a line break around each block, whitespace collapsed within lines. */
const textOf = (root: Node): string => {
  const out: Array<string> = []
  const walk = (node: Node) => {
    if (node.nodeType === 3) {
      out.push(node.textContent ?? "")
      return
    }
    if (node.nodeType !== 1) return
    const block = blocks.has(node.nodeName)
    if (block) out.push("\n")
    if (node.nodeName === "LI") out.push("- ")
    for (let i = 0; i < node.childNodes.length; i++) walk(node.childNodes[i]!)
    if (block) out.push("\n")
  }
  walk(root)
  return out.join("")
    .split("\n")
    .map((line) => line.replace(/[ \t\f\v\u00a0]+/g, " ").trim())
    .filter((line, i, lines) => line.length > 0 || (i > 0 && lines[i - 1]!.length > 0))
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim()
}

/** A page's title and readable text. */
export const extract = (html: string): { readonly title: string; readonly text: string } => {
  const { document } = parseHTML(html)
  const title = (document.querySelector("meta[property='og:title']")?.getAttribute("content") ?? document.title ?? "").trim()
  for (const el of [...document.querySelectorAll(skipped)]) el.remove()
  const candidates = [...document.querySelectorAll("article, main, [role=main]")]
    .map((el) => ({ el, length: (el.textContent ?? "").replace(/\s+/g, " ").length }))
    .sort((a, b) => b.length - a.length)
  const bodyLength = (document.body?.textContent ?? "").replace(/\s+/g, " ").length
  // the main content when it holds a good part of the page, else the whole body
  const root = candidates[0] && candidates[0].length >= bodyLength * 0.25 ? candidates[0].el : document.body ?? document.documentElement
  return { title, text: root ? textOf(root as unknown as Node) : "" }
}

const charsetOf = (contentType: string): string => /charset=["']?([\w-]+)/i.exec(contentType)?.[1]?.toLowerCase() ?? "utf-8"

const decode = (bytes: Uint8Array, contentType: string): string => {
  let charset = charsetOf(contentType)
  if (!/charset=/i.test(contentType)) {
    // <meta charset> in the first bytes
    const head = new TextDecoder("latin1").decode(bytes.subarray(0, 2048))
    charset = /<meta[^>]+charset=["']?([\w-]+)/i.exec(head)?.[1]?.toLowerCase() ?? charset
  }
  try {
    return new TextDecoder(charset).decode(bytes)
  } catch {
    return new TextDecoder("utf-8").decode(bytes)
  }
}

interface ReadInput {
  readonly url: string
  readonly max_chars?: number
}

/** `web.read`. */
export const read = (input: unknown, context: SkillContext): Effect.Effect<SkillOutput, RunError> =>
  Effect.gen(function*() {
    const { max_chars: maxChars = 20_000, url } = input as ReadInput
    const skill = `${context.app}.${context.skill}`
    const settings = Option.getOrElse(yield* Effect.serviceOption(WebSettings), () => defaultSettings)
    const response = yield* safeFetch(url, {
      maxBytes: settings.maxBytes,
      timeoutMs: settings.timeoutMs,
      allowedPrivateHosts: settings.allowedPrivateHosts,
      headers: { accept: "text/html,application/xhtml+xml,text/plain;q=0.9", "user-agent": "TroupeBot/1.0 (+web.read)" }
    }).pipe(
      Effect.mapError((e) =>
        e.reason === "blocked_address" || e.reason === "blocked_scheme" || e.reason === "host_not_allowed"
          ? new SkillEgressDenied({ skill, url: e.url, reason: e.reason, message: `${skill} may not fetch ${e.url}: ${e.message}` })
          : new SkillFailed({ skill, reason: "plugin_error", message: `${skill} could not fetch ${e.url}: ${e.message}` })
      )
    )
    if (response.status >= 400) {
      return yield* new SkillFailed({ skill, reason: "plugin_error", message: `${response.url} answered HTTP ${response.status}` })
    }
    const contentType = response.headers.get("content-type") ?? "text/html"
    const mime = contentType.split(";")[0]!.trim().toLowerCase()
    if (!readable.has(mime)) {
      return yield* new SkillFailed({ skill, reason: "plugin_error", message: `${response.url} is ${mime}, not a page with text (HTML or plain text)` })
    }
    const body = decode(response.body, contentType)
    const page = mime === "text/plain" ? { title: "", text: body.trim() } : extract(body)
    const truncated = page.text.length > maxChars
    const text = truncated ? `${page.text.slice(0, maxChars).replace(/\s+\S*$/, "")} …` : page.text
    return { result: { url: response.url, title: page.title, text, truncated, length: page.text.length } }
  })
