/**
 * A mate's reply as HTML: Markdown (marked, GitHub flavour) sanitised by DOMPurify, so no
 * script, handler, frame, form or style from a reply ever reaches the page. Links open in a new
 * tab without a referrer; images become links (a reply must not make the browser fetch from
 * elsewhere — the page's CSP would refuse it anyway). Code blocks are highlighted after
 * rendering by highlight.js, loaded on first use so it is not part of the first page load.
 */
import DOMPurify from "dompurify"
import { Marked } from "marked"

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    image({ href, text }) {
      const label = text || href
      return `<a href="${escapeAttr(href)}">${escapeHtml(label)}</a>`
    },
    html({ text }) {
      // raw HTML in a reply is shown as text, never interpreted
      return escapeHtml(text)
    }
  }
})

const escapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => escapes[c]!)
const escapeAttr = escapeHtml

let hooked = false
const hook = () => {
  if (hooked) return
  hooked = true
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      const href = node.getAttribute("href") ?? ""
      if (!/^(https?:|mailto:|#|\/)/i.test(href)) node.removeAttribute("href")
      node.setAttribute("target", "_blank")
      node.setAttribute("rel", "noopener noreferrer nofollow")
    }
  })
}

const allowedTags = [
  "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre",
  "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul", "span", "input"
]

/** Markdown to sanitised HTML. */
export const renderMarkdown = (source: string): string => {
  hook()
  const html = marked.parse(source) as string
  return DOMPurify.sanitize(html, {
    ALLOWED_TAGS: allowedTags,
    ALLOWED_ATTR: ["href", "title", "class", "type", "checked", "disabled", "align", "start"],
    ALLOW_DATA_ATTR: false
  })
}

type Hljs = typeof import("highlight.js/lib/core").default
let hljs: Promise<Hljs> | undefined

const loadHighlighter = (): Promise<Hljs> => {
  hljs ??= (async () => {
    const [core, ...languages] = await Promise.all([
      import("highlight.js/lib/core"),
      import("highlight.js/lib/languages/javascript"),
      import("highlight.js/lib/languages/typescript"),
      import("highlight.js/lib/languages/python"),
      import("highlight.js/lib/languages/bash"),
      import("highlight.js/lib/languages/json"),
      import("highlight.js/lib/languages/xml"),
      import("highlight.js/lib/languages/css"),
      import("highlight.js/lib/languages/sql"),
      import("highlight.js/lib/languages/rust"),
      import("highlight.js/lib/languages/go"),
      import("highlight.js/lib/languages/java"),
      import("highlight.js/lib/languages/c"),
      import("highlight.js/lib/languages/cpp"),
      import("highlight.js/lib/languages/yaml"),
      import("highlight.js/lib/languages/markdown"),
      import("highlight.js/lib/languages/diff"),
      import("highlight.js/lib/languages/shell")
    ])
    const names = ["javascript", "typescript", "python", "bash", "json", "xml", "css", "sql", "rust", "go", "java", "c", "cpp", "yaml", "markdown", "diff", "shell"]
    const h = core.default
    names.forEach((name, i) => h.registerLanguage(name, languages[i]!.default))
    h.configure({ ignoreUnescapedHTML: true })
    return h
  })()
  return hljs
}

/** Highlight the code blocks under `root` that are not highlighted yet (text in, escaped spans out). */
export const highlightWithin = async (root: HTMLElement): Promise<void> => {
  const blocks = [...root.querySelectorAll<HTMLElement>("pre code:not(.hljs)")]
  if (blocks.length === 0) return
  const h = await loadHighlighter()
  for (const block of blocks) {
    const language = /language-([\w-]+)/.exec(block.className)?.[1]
    if (language && !h.getLanguage(language)) block.className = "language-plaintext"
    h.highlightElement(block)
  }
}
