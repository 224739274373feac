import { describe, expect, it } from "vitest"
import * as Html from "./Html.ts"

const page = "https://example.com/blog/post"
const bytes = (...parts: ReadonlyArray<string | ReadonlyArray<number>>) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === "string" ? [...new TextEncoder().encode(p)] : [...p])))

describe("decodeHtml", () => {
  it("takes the charset from the BOM first, then the header, then <meta>", () => {
    expect(Html.decodeHtml(bytes([0xef, 0xbb, 0xbf], "<title>é</title>"), "text/html; charset=iso-8859-1")).toContain("<title>é</title>")
    const utf16 = new Uint8Array([0xff, 0xfe, ...[..."<p>hi</p>"].flatMap((c) => [c.charCodeAt(0), 0])])
    expect(Html.decodeHtml(utf16, null)).toContain("<p>hi</p>")
    expect(Html.decodeHtml(bytes("<title>", [0xe9], "</title>"), "text/html; charset=ISO-8859-1")).toContain("é")
    expect(Html.decodeHtml(bytes("<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1251\"><title>", [0xcf, 0xf0, 0xe8], "</title>"), "text/html")).toContain("При")
    expect(Html.decodeHtml(bytes("<title>ü</title>"), null)).toContain("ü")
  })

  it("ignores unknown charset labels and falls back to UTF-8", () => {
    expect(Html.decodeHtml(bytes("<title>ok ü</title>"), "text/html; charset=x-made-up")).toContain("ok ü")
  })
})

describe("extractMetadata", () => {
  const head = (inner: string, htmlAttrs = "") => `<!doctype html><html ${htmlAttrs}><head>${inner}</head><body></body></html>`

  it("prefers og:* over twitter:* over <title>/<meta> over JSON-LD, field by field", () => {
    const ld = `<script type="application/ld+json">{"@type":"Article","headline":"LD","description":"LD d","image":"/ld.png","publisher":{"name":"LD pub"}}</script>`
    const all = Html.extractMetadata(head(`<meta property="og:title" content="OG"><meta name="twitter:title" content="TW"><title>T</title>${ld}`), page)
    expect(all.title).toBe("OG")
    expect(Html.extractMetadata(head(`<meta name="twitter:title" content="TW"><title>T</title>${ld}`), page).title).toBe("TW")
    expect(Html.extractMetadata(head(`<title>T</title>${ld}`), page).title).toBe("T")
    const onlyLd = Html.extractMetadata(head(ld), page)
    expect(onlyLd).toMatchObject({ title: "LD", description: "LD d", image: "https://example.com/ld.png", site_name: "LD pub" })
    expect(Html.extractMetadata(head(`<meta name="description" content="M"><meta name="twitter:description" content="TD">`), page).description).toBe("TD")
  })

  it("decodes entities, collapses whitespace and resolves relative URLs (and <base>)", () => {
    const m = Html.extractMetadata(head(`<title>\n  Fish &amp;   chips &#8211; &quot;best&quot;\t</title><meta property="og:image" content="../img/a.jpg"><link rel="canonical" href="//example.com/canonical">`), page)
    expect(m.title).toBe("Fish & chips – \"best\"")
    expect(m.image).toBe("https://example.com/img/a.jpg")
    expect(m.url).toBe("https://example.com/canonical")
    const based = Html.extractMetadata(head(`<base href="https://cdn.example.net/assets/"><meta property="og:image" content="x.png">`), page)
    expect(based.image).toBe("https://cdn.example.net/assets/x.png")
  })

  it("never returns javascript:, data: or other non-http URLs", () => {
    const m = Html.extractMetadata(
      head(`<meta property="og:image" content="javascript:alert(1)"><meta name="twitter:image" content=" data:image/png;base64,AAAA">
        <link rel="canonical" href="javascript:void(0)"><meta property="og:url" content="file:///etc/passwd">
        <link rel="icon" href="data:image/svg+xml,<svg/>"><link rel="apple-touch-icon" href="JaVaScRiPt:alert(2)">`),
      page
    )
    expect(m.image).toBeNull()
    expect(m.url).toBe(page)
    expect(m.favicon).toBe("https://example.com/favicon.ico")
    expect(JSON.stringify(m)).not.toMatch(/javascript|data:|file:/i)
  })

  it("takes the whole language tag from <html lang>, then og:locale, then Content-Language", () => {
    expect(Html.extractMetadata(head("", "lang=\"pt-BR\""), page).lang).toBe("pt-BR")
    expect(Html.extractMetadata(head("", "lang=\"en-gb\""), page).lang).toBe("en-GB")
    expect(Html.extractMetadata(head("", "lang=\"zh-hant-tw\""), page).lang).toBe("zh-Hant-TW")
    expect(Html.extractMetadata(head("", "lang=\"en\""), page).lang).toBe("en")
    expect(Html.extractMetadata(head("<meta property=\"og:locale\" content=\"de_DE\">"), page).lang).toBe("de-DE")
    expect(Html.extractMetadata(head("<meta property=\"og:locale\" content=\"de_DE\">", "lang=\"not a tag\""), page).lang).toBe("de-DE")
    expect(Html.extractMetadata(head(""), page, "fr-CA, en").lang).toBe("fr-CA")
    expect(Html.extractMetadata(head(""), page).lang).toBeNull()
  })

  it("reads meta values given as value= and names given as name=\"og:*\"", () => {
    const m = Html.extractMetadata(head(`<meta name="twitter:title" value="From value"><meta name="og:site_name" content="Named">`), page)
    expect(m.title).toBe("From value")
    expect(m.site_name).toBe("Named")
  })

  it("survives malformed JSON-LD and garbage markup", () => {
    const m = Html.extractMetadata(`<html><head><script type="application/ld+json">{not json</script><title>ok</title><meta property="og:title"></head>`, page)
    expect(m.title).toBe("ok")
  })
})

describe("rankIcons", () => {
  it("ranks apple-touch > PNG (largest first) > ICO > SVG, then /favicon.ico", () => {
    const doc = Html.parse(`<head>
      <link rel="icon" href="/a.svg" type="image/svg+xml">
      <link rel="shortcut icon" href="/b.ico">
      <link rel="icon" href="/c-16.png" sizes="16x16">
      <link rel="icon" href="/c-192.png" sizes="192x192">
      <link rel="apple-touch-icon" href="/apple.png">
    </head>`)
    expect(Html.rankIcons(doc, page).map((c) => new URL(c.url).pathname)).toEqual(["/apple.png", "/c-192.png", "/c-16.png", "/b.ico", "/a.svg", "/favicon.ico"])
  })
})
