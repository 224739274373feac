/**
 * Reading pages: decode the bytes with the right charset, parse with linkedom, extract link-preview
 * metadata (og:* > twitter:* > <title>/<meta> > JSON-LD) and rank the page's icons.
 * Pure functions: fetching and caching live in `Preview.ts`.
 */
import { parseHTML } from "linkedom"

/** What a link preview shows. Absent fields are `null`. */
export interface Metadata {
  readonly url: string
  readonly title: string | null
  readonly description: string | null
  readonly image: string | null
  readonly favicon: string | null
  readonly site_name: string | null
  readonly lang: string | null
  readonly type: string | null
}

/** A candidate icon, best first once ranked. */
export interface IconCandidate {
  readonly url: string
  readonly rel: string
  readonly type: string | null
  readonly size: number
  readonly rank: number
}

// ---------------------------------------------------------------------------------------------
// Charset

const labelOk = (label: string): string | undefined => {
  try {
    return new TextDecoder(label.trim().toLowerCase()).encoding
  } catch {
    return undefined
  }
}

const charsetOfContentType = (contentType: string | null): string | undefined => {
  const m = /charset\s*=\s*["']?([^;"'\s]+)/i.exec(contentType ?? "")
  return m ? labelOk(m[1]!) : undefined
}

const bomCharset = (b: Uint8Array): string | undefined => {
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return "utf-8"
  if (b[0] === 0xfe && b[1] === 0xff) return "utf-16be"
  if (b[0] === 0xff && b[1] === 0xfe) return "utf-16le"
  return undefined
}

/** `<meta charset>` or `<meta http-equiv=content-type content=...charset=>` in the first 4 KB (HTML's prescan, simplified). */
const metaCharset = (b: Uint8Array): string | undefined => {
  const head = new TextDecoder("latin1").decode(b.subarray(0, 4096))
  const direct = /<meta[^>]+charset\s*=\s*["']?\s*([a-z0-9_:.-]+)/i.exec(head)
  return direct ? labelOk(direct[1]!) : undefined
}

/** Decode a page: BOM, then the Content-Type charset, then `<meta>`, then UTF-8. */
export const decodeHtml = (bytes: Uint8Array, contentType: string | null): string => {
  const bom = bomCharset(bytes)
  const encoding = bom ?? charsetOfContentType(contentType) ?? metaCharset(bytes) ?? "utf-8"
  // A page that declares UTF-16 in a meta tag is really ASCII-compatible (HTML spec): use UTF-8.
  const effective = !bom && encoding.startsWith("utf-16") ? "utf-8" : encoding
  return new TextDecoder(effective).decode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Helpers

const clean = (s: string | null | undefined, max = 2000): string | null => {
  if (s === null || s === undefined) return null
  const collapsed = s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "").replace(/\s+/g, " ").trim()
  if (collapsed.length === 0) return null
  return collapsed.length > max ? `${collapsed.slice(0, max - 1)}…` : collapsed
}

/** Resolve against the page; only http(s) URLs survive (never `javascript:`, `data:`, …). */
export const safeUrl = (raw: string | null | undefined, base: string): string | null => {
  if (!raw) return null
  const trimmed = raw.trim()
  if (trimmed.length === 0) return null
  try {
    const url = new URL(trimmed, base)
    if (url.protocol !== "http:" && url.protocol !== "https:") return null
    url.username = ""
    url.password = ""
    return url.href
  } catch {
    return null
  }
}

type Doc = ReturnType<typeof parseHTML>["document"]

const metaContent = (doc: Doc, ...keys: ReadonlyArray<string>): string | null => {
  const metas = [...doc.querySelectorAll("meta")]
  for (const key of keys) {
    for (const m of metas) {
      const name = (m.getAttribute("property") ?? m.getAttribute("name") ?? m.getAttribute("itemprop") ?? "").trim().toLowerCase()
      if (name !== key) continue
      const value = clean(m.getAttribute("content") ?? m.getAttribute("value"))
      if (value) return value
    }
  }
  return null
}

type JsonValue = string | number | boolean | null | ReadonlyArray<JsonValue> | { readonly [k: string]: JsonValue }
type JsonObject = { readonly [k: string]: JsonValue }

const isObject = (v: JsonValue | undefined): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v)

/** Every object in the page's JSON-LD blocks (flattening arrays and `@graph`). */
const jsonLdObjects = (doc: Doc): ReadonlyArray<JsonObject> => {
  const out: Array<JsonObject> = []
  const visit = (v: JsonValue | undefined, depth: number) => {
    if (depth > 4 || v === undefined) return
    if (Array.isArray(v)) for (const x of v) visit(x, depth + 1)
    else if (isObject(v)) {
      out.push(v)
      visit(v["@graph"], depth + 1)
    }
  }
  for (const script of doc.querySelectorAll("script[type=\"application/ld+json\"]")) {
    try {
      visit(JSON.parse(script.textContent ?? "") as JsonValue, 0)
    } catch {
      // malformed JSON-LD is common; ignore it
    }
  }
  // Prefer the page's main thing over site-wide objects.
  const weight = (o: JsonObject) => {
    const type = String(Array.isArray(o["@type"]) ? o["@type"][0] : o["@type"] ?? "")
    return /Article|Posting|Product|Recipe|Video|Event|Page/i.test(type) ? 0 : /WebSite|Organization/i.test(type) ? 2 : 1
  }
  return out.sort((a, b) => weight(a) - weight(b))
}

const ldString = (objects: ReadonlyArray<JsonObject>, ...keys: ReadonlyArray<string>): string | null => {
  for (const o of objects) {
    for (const key of keys) {
      const v = o[key]
      if (typeof v === "string" && clean(v)) return clean(v)
    }
  }
  return null
}

const ldImage = (objects: ReadonlyArray<JsonObject>): string | null => {
  const pick = (v: JsonValue | undefined): string | null => {
    if (typeof v === "string") return v
    if (Array.isArray(v)) {
      for (const x of v) {
        const p = pick(x)
        if (p) return p
      }
      return null
    }
    if (isObject(v)) return typeof v["url"] === "string" ? v["url"] : typeof v["contentUrl"] === "string" ? v["contentUrl"] : null
    return null
  }
  for (const o of objects) {
    const p = pick(o["image"]) ?? pick(o["thumbnailUrl"])
    if (p) return p
  }
  return null
}

const ldPublisher = (objects: ReadonlyArray<JsonObject>): string | null => {
  for (const o of objects) {
    const p = o["publisher"]
    if (isObject(p) && typeof p["name"] === "string" && clean(p["name"])) return clean(p["name"])
  }
  return null
}

// ---------------------------------------------------------------------------------------------
// Icons

const largestSize = (sizes: string | null): number => {
  if (!sizes) return 0
  if (/any/i.test(sizes)) return 1024
  let best = 0
  for (const m of sizes.matchAll(/(\d+)\s*x\s*(\d+)/gi)) best = Math.max(best, Math.min(Number(m[1]), Number(m[2])))
  return best
}

const iconKind = (href: string, type: string | null): "png" | "ico" | "svg" | "other" => {
  const t = (type ?? "").toLowerCase()
  const path = href.toLowerCase().split(/[?#]/)[0]!
  if (t.includes("svg") || path.endsWith(".svg")) return "svg"
  if (t.includes("icon") || t.includes("ico") || path.endsWith(".ico")) return "ico"
  if (t.includes("png") || path.endsWith(".png")) return "png"
  return "other"
}

/**
 * The page's icons, best first: apple-touch icons, then PNG (and other raster) icons, larger first,
 * then ICO, then SVG; `/favicon.ico` of the page's origin comes last.
 */
export const rankIcons = (doc: Doc, base: string): ReadonlyArray<IconCandidate> => {
  const found: Array<IconCandidate> = []
  const seen = new Set<string>()
  for (const link of doc.querySelectorAll("link[rel][href]")) {
    const rel = (link.getAttribute("rel") ?? "").toLowerCase().split(/\s+/)
    const isApple = rel.includes("apple-touch-icon") || rel.includes("apple-touch-icon-precomposed")
    if (!isApple && !rel.includes("icon")) continue
    const url = safeUrl(link.getAttribute("href"), base)
    if (!url || seen.has(url)) continue
    seen.add(url)
    const type = link.getAttribute("type")
    const kind = iconKind(url, type)
    const size = largestSize(link.getAttribute("sizes")) || (isApple ? 180 : 0)
    const rank = isApple ? 0 : kind === "png" || kind === "other" ? 1 : kind === "ico" ? 2 : 3
    found.push({ url, rel: isApple ? "apple-touch-icon" : "icon", type, size, rank })
  }
  found.sort((a, b) => a.rank - b.rank || b.size - a.size)
  const fallback = safeUrl("/favicon.ico", base)
  if (fallback && !seen.has(fallback)) found.push({ url: fallback, rel: "fallback", type: "image/x-icon", size: 0, rank: 4 })
  return found
}

// ---------------------------------------------------------------------------------------------
// Metadata

/**
 * A page's language as a whole BCP 47 tag in canonical case (`en-GB`, `zh-Hant-TW`): region and
 * script are kept. `og:locale`'s `en_GB` form is accepted; anything that is not a tag gives null.
 */
export const languageTag = (raw: string | null | undefined): string | null => {
  const text = (raw ?? "").trim().replace(/_/g, "-")
  if (!/^[a-z]{2,3}(-[a-z0-9]{1,8})*$/i.test(text)) return null
  try {
    return Intl.getCanonicalLocales(text)[0] ?? null
  } catch {
    return null
  }
}

/** Parse a page into a document. */
export const parse = (html: string): Doc => parseHTML(html).document

/** Extract the link-preview metadata of a page fetched from `finalUrl`. */
export const extractMetadata = (html: string, finalUrl: string, contentLanguage: string | null = null): Metadata => {
  const doc = parse(html)
  const baseHref = doc.querySelector("base[href]")?.getAttribute("href")
  const base = safeUrl(baseHref, finalUrl) ?? finalUrl
  const ld = jsonLdObjects(doc)

  const title = metaContent(doc, "og:title") ?? metaContent(doc, "twitter:title") ?? clean(doc.querySelector("title")?.textContent, 500) ??
    metaContent(doc, "title") ?? ldString(ld, "headline", "name")
  const description = metaContent(doc, "og:description") ?? metaContent(doc, "twitter:description") ?? metaContent(doc, "description") ??
    ldString(ld, "description")
  const image = safeUrl(metaContent(doc, "og:image:secure_url", "og:image:url", "og:image"), base) ??
    safeUrl(metaContent(doc, "twitter:image", "twitter:image:src"), base) ??
    safeUrl(doc.querySelector("link[rel=\"image_src\"]")?.getAttribute("href"), base) ??
    safeUrl(ldImage(ld), base)
  const siteName = metaContent(doc, "og:site_name") ?? metaContent(doc, "application-name") ?? ldPublisher(ld)
  const canonical = safeUrl(doc.querySelector("link[rel=\"canonical\"]")?.getAttribute("href"), base) ??
    safeUrl(metaContent(doc, "og:url"), base) ?? safeUrl(ldString(ld, "url", "mainEntityOfPage"), base) ?? finalUrl
  const lang = languageTag(doc.documentElement?.getAttribute("lang")) ?? languageTag(metaContent(doc, "og:locale")) ??
    languageTag(ldString(ld, "inLanguage")) ?? languageTag(contentLanguage?.split(",")[0])
  const icons = rankIcons(doc, base)
  return {
    url: canonical,
    title,
    description,
    image,
    favicon: icons[0]?.url ?? null,
    site_name: siteName,
    lang,
    type: metaContent(doc, "og:type")
  }
}
