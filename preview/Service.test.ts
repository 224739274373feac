/**
 * The preview service over HTTP: metadata of the fixture pages, favicons, SSRF refusals through the
 * endpoints, caching (hit, refresh, 304, restart survival) and the security options.
 */
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Metadata } from "./Html.ts"
import * as Policy from "./Policy.ts"
import { imagesDir, metadataDir, type Running, startOrigin, startPreview } from "./testing/harness.ts"

/** The page URL each metascraper test used (fixtures README). */
const pages: Record<string, string> = {
  astier: "https://anisse.astier.eu/awk-driven-iot.html",
  "segment-academy": "https://www.segment.com/academy/collecting-data/when-to-track-on-the-client-vs-server",
  "smitten-kitchen": "http://smittenkitchen.com/blog/2016/05/cucumber-yogurt-raita-salad",
  wsj: "http://www.wsj.com/articles/funding-snapshot-software-development-platform-circleci-raises-18m-1463398202",
  "twitter-image": "https://x.com/UaSmart/status/934106870834454529",
  bukvy: "https://bukvy.org/en/poroshenko-accuses-authorities-of-falsifying-sanctions-decree-supreme-court-demands-evidence-from-the-government/"
}

/** Fields of metascraper's snapshot (`expected.metascraper.md`). */
const expectedOf = (dir: string): Record<string, string | null> => {
  const text = NodeFs.readFileSync(NodePath.join(metadataDir, dir, "expected.metascraper.md"), "utf8")
  const out: Record<string, string | null> = {}
  for (const m of text.matchAll(/^\s+(\w+): (null|'(.*)'),$/gm)) out[m[1]!] = m[2] === "null" ? null : m[3]!.replace(/\\'/g, "'")
  return out
}

/** metascraper turns straight quotes into typographic ones; compare without that difference. */
const plain = (s: string | null | undefined) => (s ?? "").replace(/[’‘]/g, "'").replace(/[“”]/g, "\"")

const pathOf = (url: string) => {
  const u = new URL(url)
  return u.pathname.replace(/\/$/, "")
}

describe("metadata, favicons and caching", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>
  let preview: Running
  const cacheDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "preview-svc-"))
  const png = NodeFs.readFileSync(NodePath.join(imagesDir, "tbgn2c16.png"))
  let faviconIco = true

  beforeAll(async () => {
    origin = await startOrigin({
      "/site/": (_req, res) => {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
        res.end(`<!doctype html><html lang="fr-FR"><head>
          <title>  Fallback &amp; title  </title>
          <link rel="icon" href="/icons/tiny.svg" type="image/svg+xml">
          <link rel="icon" href="/favicon-legacy.ico">
          <link rel="icon" href="/icons/fav-32.png" sizes="32x32" type="image/png">
          <link rel="apple-touch-icon" href="/icons/apple.png">
          <meta property="og:image" content="javascript:alert(1)">
          <meta name="twitter:image" content="data:image/png;base64,AAAA">
          <script type="application/ld+json">{"@type":"NewsArticle","headline":"LD headline","image":{"url":"/ld.jpg"},"description":"LD description"}</script>
        </head><body></body></html>`)
      },
      "/latin1": (_req, res) => {
        res.writeHead(200, { "content-type": "text/html" })
        res.end(Buffer.concat([
          Buffer.from("<html><head><meta charset=\"windows-1252\"><title>Caf"),
          Buffer.from([0xe9]),
          Buffer.from(" cr"),
          Buffer.from([0xe8]),
          Buffer.from("me</title></head></html>")
        ]))
      },
      "/koi8": (_req, res) => {
        res.writeHead(200, { "content-type": "text/html; charset=koi8-r" })
        res.end(Buffer.concat([Buffer.from("<title>"), Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]), Buffer.from("</title>")]))
      },
      "/icons/apple.png": (_req, res) => {
        res.writeHead(200, { "content-type": "image/png" })
        res.end(png)
      },
      "/bare/": (_req, res) => {
        res.writeHead(200, { "content-type": "text/html" })
        res.end("<title>no icons</title>")
      },
      "/favicon.ico": (_req, res) => {
        if (!faviconIco) {
          res.writeHead(404)
          return res.end()
        }
        // An ICO holding one PNG entry.
        const header = Buffer.alloc(22)
        header.writeUInt16LE(0, 0)
        header.writeUInt16LE(1, 2)
        header.writeUInt16LE(1, 4)
        header[6] = 32
        header[7] = 32
        header.writeUInt16LE(1, 10)
        header.writeUInt16LE(32, 12)
        header.writeUInt32LE(png.byteLength, 14)
        header.writeUInt32LE(22, 18)
        res.writeHead(200, { "content-type": "image/x-icon" })
        res.end(Buffer.concat([header, png]))
      },
      "/redirect-private": (_req, res) => {
        res.writeHead(302, { location: "http://10.0.0.1/admin" })
        res.end()
      },
      "/redirect-name": (_req, res) => {
        res.writeHead(302, { location: "http://db.private.test/" })
        res.end()
      },
      "/pdf": (_req, res) => {
        res.writeHead(200, { "content-type": "application/pdf" })
        res.end("%PDF-1.4")
      }
    })
    preview = await startPreview({ engine: "vips", cacheDir, allowedPrivateHosts: [`127.0.0.1:${origin.port}`], pool: { workers: 1 } })
  })
  afterAll(async () => {
    await preview.close()
    await origin.close()
  })

  const metadata = async (url: string, init?: RequestInit) => {
    const r = await fetch(`${preview.base}/api/v1/metadata`, { method: "POST", body: JSON.stringify({ url }), headers: { "content-type": "application/json" }, ...init })
    return { status: r.status, headers: r.headers, body: (await r.json()) as Metadata & { error?: { code: string } } }
  }

  it.each(Object.keys(pages))("extracts the expected fields of the %s page", async (dir) => {
    const expected = expectedOf(dir)
    const { body, status } = await metadata(`${origin.base}/pages/${dir}/`)
    expect(status).toBe(200)
    expect(plain(body.title)).toBe(plain(expected["title"]))
    expect(plain(body.description)).toBe(plain(expected["description"]))
    // The canonical URL is the page's own; without one (astier) it is where the page was fetched from.
    if (dir === "astier") expect(body.url).toBe(`${origin.base}/pages/astier/`)
    else expect(pathOf(body.url)).toBe(pathOf(expected["url"]!))
    // the whole tag of <html lang> (metascraper's expectations keep only the language)
    if (expected["lang"]) expect(body.lang).toBe(dir === "bukvy" || dir === "wsj" ? "en-US" : expected["lang"])
    if (dir !== "segment-academy" && expected["image"] && body.image) expect(pathOf(body.image)).toBe(pathOf(expected["image"]))
    if (dir === "twitter-image" || dir === "bukvy" || dir === "wsj" || dir === "smitten-kitchen") expect(body.image).not.toBeNull()
    if (dir === "bukvy" || dir === "segment-academy" || dir === "twitter-image") expect(body.site_name).toContain(expected["publisher"]!)
    expect(body.favicon).toMatch(/^https?:\/\//)
  })

  it("prefers og over twitter over <title> over JSON-LD, and never returns javascript: or data: URLs", async () => {
    const { body } = await metadata(`${origin.base}/site/`)
    expect(body.title).toBe("Fallback & title")
    expect(body.description).toBe("LD description")
    expect(body.image).toBe(`${origin.base}/ld.jpg`)
    expect(body.lang).toBe("fr-FR")
    expect(body.favicon).toBe(`${origin.base}/icons/apple.png`)
    expect(JSON.stringify(body)).not.toMatch(/javascript:|data:/)
  })

  it("decodes the charset from the meta tag and from the header", async () => {
    expect((await metadata(`${origin.base}/latin1`)).body.title).toBe("Café crème")
    expect((await metadata(`${origin.base}/koi8`)).body.title).toBe("Привет")
  })

  it("answers GET as well as POST, and refuses a non-page with 415", async () => {
    const r = await fetch(`${preview.base}/api/v1/metadata?url=${encodeURIComponent(`${origin.base}/pages/wsj/`)}`)
    expect(r.status).toBe(200)
    expect(((await r.json()) as Metadata).title).toContain("CircleCI")
    const pdf = await metadata(`${origin.base}/pdf`)
    expect(pdf.status).toBe(415)
    expect(pdf.body.error?.code).toBe("not_html")
    const bad = await fetch(`${preview.base}/api/v1/metadata`, { method: "POST", body: "{not json" })
    expect(bad.status).toBe(400)
  })

  it("refuses private targets, private redirects and names resolving to private addresses", async () => {
    for (const url of ["http://10.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest/meta-data/", "http://0x7f000001/", `http://127.0.0.1:${origin.port + 1}/`, "http://db.private.test/", "http://metadata.test/"]) {
      const r = await metadata(url)
      expect(r.status, url).toBe(403)
      expect(r.body.error?.code).toBe("blocked_address")
    }
    for (const path of ["/redirect-private", "/redirect-name"]) {
      const r = await metadata(`${origin.base}${path}`)
      expect(r.status).toBe(403)
      expect(r.body.error?.code).toBe("blocked_address")
    }
    const image = await fetch(`${preview.base}/api/v1/image?url=${encodeURIComponent("http://192.168.1.1/a.png")}`)
    expect(image.status).toBe(403)
    const scheme = await metadata("file:///etc/passwd")
    expect(scheme.status).toBe(400)
    expect(scheme.body.error?.code).toBe("blocked_scheme")
  })

  it("serves the best-ranked icon as PNG (apple-touch first)", async () => {
    const r = await fetch(`${preview.base}/api/v1/favicon?url=${encodeURIComponent(`${origin.base}/site/`)}`)
    expect(r.status).toBe(200)
    expect(r.headers.get("content-type")).toBe("image/png")
    expect(await sharp(new Uint8Array(await r.arrayBuffer())).metadata()).toMatchObject({ format: "png", width: 32, height: 32 })
  })

  it("falls back to /favicon.ico (a PNG inside an ICO) when the page names no icon", async () => {
    const r = await fetch(`${preview.base}/api/v1/favicon?url=${encodeURIComponent(`${origin.base}/bare/`)}&size=16`)
    expect(r.status).toBe(200)
    expect(r.headers.get("content-type")).toBe("image/png")
    expect(await sharp(new Uint8Array(await r.arrayBuffer())).metadata()).toMatchObject({ width: 16, height: 16 })
  })

  it("answers 404 favicon_not_found when no icon works", async () => {
    // The wsj page's icons live on hosts that do not resolve here; without /favicon.ico nothing is left.
    faviconIco = false
    try {
      const r = await fetch(`${preview.base}/api/v1/favicon?url=${encodeURIComponent(`${origin.base}/pages/wsj/`)}`)
      expect(r.status).toBe(404)
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe("favicon_not_found")
    } finally {
      faviconIco = true
    }
  })

  it("serves repeats from the cache, bypasses it on refresh and answers If-None-Match with 304", async () => {
    const url = `${preview.base}/api/v1/image?url=${encodeURIComponent(`${origin.base}/images/concert.jpg`)}&max_width=123&format=jpeg`
    const first = await fetch(url)
    expect(first.headers.get("x-preview-cache")).toBe("miss")
    const etag = first.headers.get("etag")!
    const hitsBefore = origin.hits()
    const second = await fetch(url)
    expect(second.headers.get("x-preview-cache")).toBe("hit")
    expect(second.headers.get("etag")).toBe(etag)
    expect(origin.hits()).toBe(hitsBefore)
    const refreshed = await fetch(`${url}&refresh=true`)
    expect(refreshed.headers.get("x-preview-cache")).toBe("refresh")
    expect(origin.hits()).toBe(hitsBefore + 1)
    const conditional = await fetch(url, { headers: { "if-none-match": etag } })
    expect(conditional.status).toBe(304)
    // Another quality is another entry.
    const other = await fetch(url.replace("max_width=123", "max_width=124"))
    expect(other.headers.get("x-preview-cache")).toBe("miss")
  })

  it("keeps its cache across a restart", async () => {
    const url = `/api/v1/image?url=${encodeURIComponent(`${origin.base}/images/grey-8bit-alpha.png`)}&max_width=77&format=webp`
    expect((await fetch(`${preview.base}${url}`)).headers.get("x-preview-cache")).toBe("miss")
    await preview.close()
    preview = await startPreview({ engine: "vips", cacheDir, allowedPrivateHosts: [`127.0.0.1:${origin.port}`], pool: { workers: 1 } })
    const hitsBefore = origin.hits()
    const again = await fetch(`${preview.base}${url}`)
    expect(again.status).toBe(200)
    expect(again.headers.get("x-preview-cache")).toBe("hit")
    expect(origin.hits()).toBe(hitsBefore)
  })

  it("reports cache sizes, hit ratios and the pool in /health/detailed", async () => {
    const r = await fetch(`${preview.adminBase}/health/detailed`)
    const body = (await r.json()) as { checks: { preview: { details: { cache: Record<string, { entries: number; hit_ratio: number }>; pool: { size: number; workers: ReadonlyArray<unknown> } } } } }
    const details = body.checks.preview.details
    expect(details.cache["image"]!.entries).toBeGreaterThan(0)
    expect(details.cache["image"]!.hit_ratio).toBeGreaterThan(0)
    expect(details.pool.size).toBe(1)
    expect(details.pool.workers.length).toBe(1)
    expect((await fetch(`${preview.base}/health`)).status).toBe(200)
  })
})

describe("security options", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>
  let preview: Running
  const key = "k3y-for-tests"
  const signing = "signing-secret"

  beforeAll(async () => {
    origin = await startOrigin()
    preview = await startPreview({
      engine: "vips",
      allowedPrivateHosts: [`127.0.0.1:${origin.port}`],
      pool: { workers: 1 },
      security: {
        apiKeys: [Redacted.make(key)],
        signingKey: Option.some(Redacted.make(signing)),
        validateReferer: true,
        allowedReferers: ["https://app.example.com", "*.trusted.example"],
        corsOrigins: ["https://app.example.com"],
        anonymous: false,
        rateLimitPerMinute: 0,
        trustProxy: false
      }
    })
  })
  afterAll(async () => {
    await preview.close()
    await origin.close()
  })

  const path = () => `/api/v1/image?url=${encodeURIComponent(`${origin.base}/images/concert.jpg`)}&max_width=50&format=jpeg`
  const codeOf = async (r: Response) => ((await r.json()) as { error: { code: string } }).error.code

  it("requires an API key or a signature", async () => {
    const r = await fetch(`${preview.base}${path()}`)
    expect(r.status).toBe(401)
    expect(await codeOf(r)).toBe("signature_required")
    const wrong = await fetch(`${preview.base}${path()}`, { headers: { "x-api-key": "nope" } })
    expect(wrong.status).toBe(401)
    expect(await codeOf(wrong)).toBe("invalid_api_key")
  })

  it("accepts a valid API key (header or bearer) without a Referer", async () => {
    expect((await fetch(`${preview.base}${path()}`, { headers: { "x-api-key": key } })).status).toBe(200)
    expect((await fetch(`${preview.base}${path()}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200)
  })

  it("accepts a signed URL from an allowed Referer, and refuses tampered, expired or foreign-Referer ones", async () => {
    const signed = Policy.signUrl(path(), signing)
    expect((await fetch(`${preview.base}${signed}`, { headers: { referer: "https://app.example.com/chat/1" } })).status).toBe(200)
    expect((await fetch(`${preview.base}${signed}`, { headers: { referer: "https://cdn.trusted.example/x" } })).status).toBe(200)
    const noReferer = await fetch(`${preview.base}${signed}`)
    expect(noReferer.status).toBe(403)
    expect(await codeOf(noReferer)).toBe("referer_required")
    const foreign = await fetch(`${preview.base}${signed}`, { headers: { referer: "https://evil.example/" } })
    expect(await codeOf(foreign)).toBe("referer_not_allowed")
    const tampered = await fetch(`${preview.base}${signed.replace("max_width=50", "max_width=51")}`, { headers: { referer: "https://app.example.com/" } })
    expect(tampered.status).toBe(403)
    expect(await codeOf(tampered)).toBe("invalid_signature")
    const expired = Policy.signUrl(`${path()}&expires=1000`, signing)
    const old = await fetch(`${preview.base}${expired}`, { headers: { referer: "https://app.example.com/" } })
    expect(await codeOf(old)).toBe("signature_expired")
  })

  it("answers CORS preflights and marks allowed origins only", async () => {
    const pre = await fetch(`${preview.base}/api/v1/metadata`, { method: "OPTIONS", headers: { origin: "https://app.example.com" } })
    expect(pre.status).toBe(204)
    expect(pre.headers.get("access-control-allow-origin")).toBe("https://app.example.com")
    expect(pre.headers.get("access-control-allow-methods")).toContain("POST")
    const other = await fetch(`${preview.base}${path()}`, { headers: { origin: "https://evil.example", "x-api-key": key } })
    expect(other.headers.get("access-control-allow-origin")).toBeNull()
  })
})

describe("rate limits", () => {
  let preview: Running
  beforeAll(async () => {
    preview = await startPreview({ engine: "vips", pool: { workers: 1 }, security: { rateLimitPerMinute: 3 } })
  })
  afterAll(() => preview.close())

  it("answers 429 with Retry-After past the per-IP limit", async () => {
    const statuses: Array<number> = []
    let last: Response | undefined
    for (let i = 0; i < 5; i++) {
      last = await fetch(`${preview.base}/api/v1/metadata?url=${encodeURIComponent("http://10.0.0.1/")}`)
      statuses.push(last.status)
    }
    expect(statuses).toEqual([403, 403, 403, 429, 429])
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(((await last!.json()) as { error: { code: string } }).error.code).toBe("rate_limited")
  })
})
