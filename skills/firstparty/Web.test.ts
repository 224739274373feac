/**
 * `web.read` through the skills service, against pages served over real HTTP: the article's
 * readable text without scripts and navigation, the cap on characters, a page in another charset,
 * the SSRF guard (a private address is refused unless the operator allows it), and content that
 * is not a page.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"
import * as Host from "../host/Host.ts"
import * as KvStore from "../host/KvStore.ts"
import * as Skills from "../Skills.ts"
import * as Web from "./Web.ts"

const astier = NodeFs.readFileSync(NodePath.join(fixturesDir(), "metadata", "astier", "input.html"))

let server: NodeHttp.Server
let origin = ""
beforeAll(async () => {
  server = NodeHttp.createServer((req, res) => {
    switch (req.url) {
      case "/article":
        res.writeHead(200, { "content-type": "text/html" })
        return res.end(astier)
      case "/latin1":
        res.writeHead(200, { "content-type": "text/html; charset=iso-8859-1" })
        return res.end(Buffer.from("<html><head><title>Caf\xe9</title></head><body><p>Cr\xe8me br\xfbl\xe9e</p><script>alert(1)</script></body></html>", "latin1"))
      case "/moved":
        res.writeHead(302, { location: "/article" })
        return res.end()
      case "/image":
        res.writeHead(200, { "content-type": "image/png" })
        return res.end(Buffer.from([0x89, 0x50, 0x4e, 0x47]))
      default:
        res.writeHead(404)
        return res.end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  origin = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

const runtime = (allowed: boolean) =>
  ManagedRuntime.make(
    Skills.layer().pipe(
      Layer.provide(Host.layer({ poolSize: 1 })),
      Layer.provide(KvStore.layerMemory()),
      Layer.merge(Layer.succeed(Web.WebSettings, { ...Web.defaultSettings, allowedPrivateHosts: allowed ? [origin.slice("http://".length)] : [] }))
    )
  )

const read = async (input: unknown, allowed = true) => {
  const rt = runtime(allowed)
  try {
    return await rt.runPromise(Effect.either(Effect.flatMap(Skills.Skills, (s) => s.invoke({ app: "web", skill: "read", input, userId: "u1" }))))
  } finally {
    await rt.dispose()
  }
}

describe("web.read", () => {
  it("returns the article's title and readable text, after redirects, without scripts or navigation", async () => {
    const r = await read({ url: `${origin}/moved` })
    if (r._tag === "Left") throw r.left
    const out = r.right.result as { url: string; title: string; text: string; truncated: boolean; length: number }
    expect(out.url).toBe(`${origin}/article`)
    expect(out.title).toMatch(/awk driven IoT/)
    expect(out.text).toMatch(/Making toy prototypes with traditional unix tools/)
    expect(out.text).toMatch(/the soundboard/)
    expect(out.text).not.toMatch(/openWindow|disqus_shortname|window\.open/)
    expect(out.truncated).toBe(false)
    expect(out.length).toBe(out.text.length)
    expect(r.right.credits).toBe(1)
  })

  it("caps the text at max_chars", async () => {
    const r = await read({ url: `${origin}/article`, max_chars: 300 })
    if (r._tag === "Left") throw r.left
    const out = r.right.result as { text: string; truncated: boolean; length: number }
    expect(out.truncated).toBe(true)
    expect(out.text.length).toBeLessThanOrEqual(302)
    expect(out.length).toBeGreaterThan(1000)
  })

  it("decodes the page's charset", async () => {
    const r = await read({ url: `${origin}/latin1` })
    if (r._tag === "Left") throw r.left
    expect(r.right.result).toMatchObject({ title: "Café", text: "Crème brûlée" })
  })

  it("refuses private addresses the operator did not allow", async () => {
    const r = await read({ url: `${origin}/article` }, false)
    expect(r._tag === "Left" && r.left._tag).toBe("SkillEgressDenied")
  })

  it("refuses what is not a page, and invalid URLs before fetching", async () => {
    const image = await read({ url: `${origin}/image` })
    expect(image._tag === "Left" && image.left.message).toMatch(/image\/png, not a page/)
    const ftp = await read({ url: "ftp://example.com/file" })
    expect(ftp._tag === "Left" && ftp.left._tag).toBe("InvalidInput")
  })
})
