/**
 * Conformance of `GET /api/v1/image` for both engines, over HTTP against a local origin: every
 * fixture gives a correct image (dimensions, format, orientation, colours, no upscaling) or a clear
 * 4xx with a machine-readable code, never a 5xx, and the server keeps serving.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EngineName } from "./engine/Engine.ts"
import { imageFixtures, imagesDir, type Running, startOrigin, startPreview } from "./testing/harness.ts"

type Expectation =
  | { readonly ok: true; readonly width: number; readonly height: number }
  | { readonly ok: false; readonly status: number; readonly codes: ReadonlyArray<string> }

const ok = (width: number, height: number): Expectation => ({ ok: true, width, height })
const refused = (status: number, ...codes: ReadonlyArray<string>): Expectation => ({ ok: false, status, codes })

/** What each fixture must give with the default box (1920x1080). */
const expectations: Record<EngineName, Record<string, Expectation>> = {
  vips: {
    "65536-uint32-limit.png": refused(422, "image_too_large"),
    "Channel_digital_image_CMYK_color.jpg": ok(500, 333),
    "Channel_digital_image_CMYK_color_no_profile.jpg": ok(500, 333),
    "Landscape_5.jpg": ok(600, 450),
    "Landscape_6.jpg": ok(600, 450),
    "Landscape_8.jpg": ok(600, 450),
    "bggn4a16.png": ok(32, 32),
    "concert.jpg": ok(400, 267),
    "corrupt-header.jpg": refused(502, "decode_failed"),
    "giant-image.jpg": refused(422, "image_too_large"),
    "grey-8bit-alpha.png": ok(400, 300),
    "rotating-squares.gif": ok(80, 80),
    "rotating-squares.webp": ok(80, 80),
    "tbgn2c16.png": ok(32, 32),
    "truncated.jpg": refused(502, "decode_failed")
  },
  jsquash: {
    "65536-uint32-limit.png": refused(422, "image_too_large"),
    "Channel_digital_image_CMYK_color.jpg": refused(415, "unsupported_color_space"),
    "Channel_digital_image_CMYK_color_no_profile.jpg": refused(415, "unsupported_color_space"),
    "Landscape_5.jpg": ok(600, 450),
    "Landscape_6.jpg": ok(600, 450),
    "Landscape_8.jpg": ok(600, 450),
    "bggn4a16.png": ok(32, 32),
    "concert.jpg": ok(400, 267),
    "corrupt-header.jpg": refused(502, "decode_failed"),
    "giant-image.jpg": refused(422, "image_too_large"),
    "grey-8bit-alpha.png": ok(400, 300),
    "rotating-squares.gif": refused(415, "unsupported_format"),
    "rotating-squares.webp": refused(415, "unsupported_format"),
    "tbgn2c16.png": ok(32, 32),
    "truncated.jpg": refused(502, "decode_failed")
  }
}

/** Mean absolute difference of two same-sized RGB renderings (0–255). */
const meanDiff = async (a: Uint8Array, b: Buffer, width: number, height: number) => {
  const ra = await sharp(a).removeAlpha().resize(width, height, { fit: "fill" }).raw().toBuffer()
  const rb = await sharp(b).rotate().flatten({ background: "#ffffff" }).toColourspace("srgb").removeAlpha().resize(width, height, { fit: "fill" }).raw().toBuffer()
  let sum = 0
  for (let i = 0; i < ra.length; i++) sum += Math.abs(ra[i]! - rb[i]!)
  return sum / ra.length
}

const engines: ReadonlyArray<EngineName> = ["vips", "jsquash"]

describe.each(engines)("image proxy with the %s engine", (engine) => {
  let origin: Awaited<ReturnType<typeof startOrigin>>
  let preview: Running
  const get = (path: string, init?: RequestInit) => fetch(`${preview.base}${path}`, init)
  const src = (name: string) => encodeURIComponent(`${origin.base}/images/${name}`)

  beforeAll(async () => {
    origin = await startOrigin()
    preview = await startPreview({ engine, allowedPrivateHosts: [`127.0.0.1:${origin.port}`], pool: { workers: 2 } })
  })
  afterAll(async () => {
    await preview.close()
    await origin.close()
  })

  it.each(imageFixtures())("gives a correct image or a clear 4xx for %s", async (name) => {
    const expected = expectations[engine][name]
    expect(expected, `no expectation written for ${name}`).toBeDefined()
    const response = await get(`/api/v1/image?url=${src(name)}&format=png`)
    const body = new Uint8Array(await response.arrayBuffer())
    // a broken image from the origin is the origin's failure (502); nothing else may be a 5xx
    expect(response.status).toBe(expected!.ok ? 200 : expected!.status)
    if (expected!.ok) {
      expect(response.status).toBe(200)
      expect(response.headers.get("content-type")).toBe("image/png")
      const meta = await sharp(body).metadata()
      expect(meta.format).toBe("png")
      expect([meta.width, meta.height]).toEqual([expected!.width, expected!.height])
      expect(response.headers.get("etag")).toMatch(/^".+"$/)
      expect(response.headers.get("cache-control")).toMatch(/max-age=\d+/)
    } else {
      expect(response.status).toBe(expected!.status)
      const error = JSON.parse(new TextDecoder().decode(body)) as { error: { code: string; message: string } }
      expect(expected!.codes).toContain(error.error.code)
      expect(error.error.message.length).toBeGreaterThan(0)
    }
  })

  it("keeps serving after every fixture (no crash, workers ready)", async () => {
    const health = await fetch(`${preview.adminBase}/health/detailed`)
    expect(health.status).toBe(200)
    const report = (await health.json()) as { checks: { preview: { details: { pool: { ready: number; size: number } } } } }
    expect(report.checks.preview.details.pool.ready).toBeGreaterThan(0)
    const again = await get(`/api/v1/image?url=${src("concert.jpg")}&max_width=100&format=jpeg`)
    expect(again.status).toBe(200)
  })

  it.each(["Landscape_5.jpg", "Landscape_6.jpg", "Landscape_8.jpg"])("honours the EXIF orientation of %s (pixels match an upright reference)", async (name) => {
    const response = await get(`/api/v1/image?url=${src(name)}&max_width=120&format=png`)
    expect(response.status).toBe(200)
    const body = new Uint8Array(await response.arrayBuffer())
    const meta = await sharp(body).metadata()
    expect([meta.width, meta.height]).toEqual([120, 90])
    const source = NodeFs.readFileSync(NodePath.join(imagesDir, name))
    expect(await meanDiff(body, source, 120, 90)).toBeLessThan(25)
    // The same image rotated the wrong way round differs a lot: the check above is meaningful.
    const wrong = await sharp(source).rotate(180).png().toBuffer()
    expect(await meanDiff(body, wrong, 120, 90)).toBeGreaterThan(40)
  })

  it("keeps the aspect ratio and never upscales", async () => {
    const small = await get(`/api/v1/image?url=${src("Landscape_6.jpg")}&max_width=200&max_height=0&format=jpeg`)
    expect(await sharp(new Uint8Array(await small.arrayBuffer())).metadata()).toMatchObject({ width: 200, height: 150, format: "jpeg" })
    const boxed = await get(`/api/v1/image?url=${src("Landscape_6.jpg")}&max_width=1000&max_height=90&format=jpeg`)
    expect(await sharp(new Uint8Array(await boxed.arrayBuffer())).metadata()).toMatchObject({ width: 120, height: 90 })
    const big = await get(`/api/v1/image?url=${src("concert.jpg")}&max_width=4000&max_height=4000&format=webp`)
    expect(await sharp(new Uint8Array(await big.arrayBuffer())).metadata()).toMatchObject({ width: 400, height: 267, format: "webp" })
    const unbounded = await get(`/api/v1/image?url=${src("concert.jpg")}&max_width=0&max_height=0&format=jpeg`)
    expect(await sharp(new Uint8Array(await unbounded.arrayBuffer())).metadata()).toMatchObject({ width: 400, height: 267 })
  })

  it.each([["jpeg", "image/jpeg"], ["webp", "image/webp"], ["png", "image/png"]] as const)("encodes %s", async (format, type) => {
    const response = await get(`/api/v1/image?url=${src("tbgn2c16.png")}&format=${format}&quality=70`)
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe(type)
    expect((await sharp(new Uint8Array(await response.arrayBuffer())).metadata()).format).toBe(format)
  })

  it("flattens transparency onto white for JPEG", async () => {
    const source = NodeFs.readFileSync(NodePath.join(imagesDir, "grey-8bit-alpha.png"))
    const raw = await sharp(source).ensureAlpha().raw().toBuffer({ resolveWithObject: true })
    let transparent = -1
    for (let i = 0; i < raw.info.width * raw.info.height; i++) {
      if (raw.data[i * raw.info.channels + raw.info.channels - 1] === 0) {
        transparent = i
        break
      }
    }
    expect(transparent).toBeGreaterThanOrEqual(0)
    const response = await get(`/api/v1/image?url=${src("grey-8bit-alpha.png")}&format=jpeg&quality=95`)
    const out = await sharp(new Uint8Array(await response.arrayBuffer())).raw().toBuffer({ resolveWithObject: true })
    expect(out.info.channels).toBe(3)
    const at = transparent * 3
    expect(Math.min(out.data[at]!, out.data[at + 1]!, out.data[at + 2]!)).toBeGreaterThan(235)
  })

  it("rejects bad parameters with 400 and a code", async () => {
    for (const query of ["", "url=notaurl", "url=ftp%3A%2F%2Fexample.com%2Fa.png", `url=${src("concert.jpg")}&quality=0`, `url=${src("concert.jpg")}&format=gif`, `url=${src("concert.jpg")}&max_width=-1`]) {
      const response = await get(`/api/v1/image?${query}`)
      expect(response.status).toBe(400)
      expect(((await response.json()) as { error: { code: string } }).error.code).toMatch(/^(missing_url|invalid_url|blocked_scheme|invalid_parameter)$/)
    }
  })
})

/** `name` cut after `fraction` of its bytes (a download that stopped half-way). */
const cut = (name: string, fraction: number) => {
  const bytes = NodeFs.readFileSync(NodePath.join(imagesDir, name))
  return bytes.subarray(0, Math.floor(bytes.byteLength * fraction))
}

/** `name` with a stretch of its compressed data overwritten (a corrupt file that still has its end). */
const garbled = (name: string) => {
  const bytes = Buffer.from(NodeFs.readFileSync(NodePath.join(imagesDir, name)))
  const scan = bytes.indexOf(Buffer.from([0xff, 0xda]))
  for (let i = scan + 2000; i < scan + 6000; i++) bytes[i] = (i * 7919) & 0xff
  return bytes
}

describe.each(engines)("broken images with the %s engine", (engine) => {
  let origin: Awaited<ReturnType<typeof startOrigin>>
  let preview: Running
  const broken: Record<string, Buffer> = {
    "cut.jpg": cut("Landscape_6.jpg", 0.6),
    "cut.png": cut("grey-8bit-alpha.png", 0.7),
    "cut.webp": cut("rotating-squares.webp", 0.8),
    "cut.gif": cut("rotating-squares.gif", 0.8),
    "garbled.jpg": garbled("Landscape_6.jpg")
  }
  beforeAll(async () => {
    origin = await startOrigin(Object.fromEntries(Object.entries(broken).map(([name, body]) => [`/${name}`, (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" })
      res.end(body)
    }])))
    preview = await startPreview({ engine, allowedPrivateHosts: [`127.0.0.1:${origin.port}`], pool: { workers: 1 } })
  })
  afterAll(async () => {
    await preview.close()
    await origin.close()
  })

  it.each(Object.keys(broken))("refuses the broken %s instead of serving it half-decoded", async (name) => {
    const r = await fetch(`${preview.base}/api/v1/image?url=${encodeURIComponent(`${origin.base}/${name}`)}&format=png`)
    const error = ((await r.json()) as { error: { code: string } }).error.code
    // @jsquash reads neither GIF nor animated WebP at all
    if (engine === "jsquash" && (name.endsWith(".gif") || name.endsWith(".webp"))) expect([r.status, error]).toEqual([415, "unsupported_format"])
    else expect([r.status, error]).toEqual([502, "decode_failed"])
  })
})

describe("image proxy limits", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>
  let preview: Running
  beforeAll(async () => {
    origin = await startOrigin({
      "/svg": (_req, res) => {
        res.writeHead(200, { "content-type": "image/svg+xml" })
        res.end("<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><script>alert(1)</script></svg>")
      },
      "/html": (_req, res) => {
        res.writeHead(200, { "content-type": "text/html" })
        res.end("<!doctype html><title>not an image</title>")
      },
      "/missing": (_req, res) => {
        res.writeHead(404)
        res.end()
      }
    })
    preview = await startPreview({
      engine: "vips",
      allowedPrivateHosts: [`127.0.0.1:${origin.port}`],
      limits: { maxImageBytes: 50_000, maxPixels: 300 * 300, maxFrames: 10 },
      pool: { workers: 1 }
    })
  })
  afterAll(async () => {
    await preview.close()
    await origin.close()
  })
  const get = (url: string) => fetch(`${preview.base}/api/v1/image?url=${encodeURIComponent(url)}`)
  const codeOf = async (r: Response) => ((await r.json()) as { error: { code: string } }).error.code

  it("refuses a source over the byte cap while streaming", async () => {
    const r = await get(`${origin.base}/images/giant-image.jpg`)
    expect(r.status).toBe(413)
    expect(await codeOf(r)).toBe("source_too_large")
  })

  it("refuses a source over the pixel cap from its header", async () => {
    const r = await get(`${origin.base}/images/concert.jpg`)
    expect(r.status).toBe(422)
    expect(await codeOf(r)).toBe("image_too_large")
  })

  it("refuses an animation with more frames than allowed", async () => {
    const r = await get(`${origin.base}/images/rotating-squares.gif`)
    expect(r.status).toBe(422)
    expect(await codeOf(r)).toBe("too_many_frames")
    expect((await get(`${origin.base}/images/rotating-squares.webp`)).status).toBe(200)
  })

  it("never passes SVG through", async () => {
    const r = await get(`${origin.base}/svg`)
    expect(r.status).toBe(415)
    expect(r.headers.get("content-type")).toContain("application/json")
    expect(await codeOf(r)).toBe("unsupported_format")
  })

  it("refuses what is not an image", async () => {
    const r = await get(`${origin.base}/html`)
    expect(r.status).toBe(415)
  })

  it("maps an origin 404 to 404 upstream_not_found", async () => {
    const r = await get(`${origin.base}/missing`)
    expect(r.status).toBe(404)
    expect(await codeOf(r)).toBe("upstream_not_found")
  })
})

describe("wasm-vips specifics", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>
  let preview: Running
  beforeAll(async () => {
    origin = await startOrigin()
    preview = await startPreview({ engine: "vips", allowedPrivateHosts: [`127.0.0.1:${origin.port}`], limits: { maxPixels: 300_000_000 }, pool: { workers: 1 } })
  })
  afterAll(async () => {
    await preview.close()
    await origin.close()
  })
  const get = (name: string, query: string) => fetch(`${preview.base}/api/v1/image?url=${encodeURIComponent(`${origin.base}/images/${name}`)}&${query}`)

  it.each(["Channel_digital_image_CMYK_color.jpg", "Channel_digital_image_CMYK_color_no_profile.jpg"])("converts the CMYK %s to sRGB colours close to sharp's", async (name) => {
    const response = await get(name, "max_width=100&format=png")
    expect(response.status).toBe(200)
    const body = new Uint8Array(await response.arrayBuffer())
    const meta = await sharp(body).metadata()
    expect(meta.space).toBe("srgb")
    expect(meta.channels).toBe(3)
    expect(await meanDiff(body, NodeFs.readFileSync(NodePath.join(imagesDir, name)), meta.width!, meta.height!)).toBeLessThan(20)
  })

  it("shrinks a 280 MP image on load when the pixel limit allows it", async () => {
    const response = await get("giant-image.jpg", "max_width=500&format=jpeg")
    expect(response.status).toBe(200)
    expect(await sharp(new Uint8Array(await response.arrayBuffer())).metadata()).toMatchObject({ width: 500, height: 350, format: "jpeg" })
  })

  it("takes the first frame of animations", async () => {
    for (const name of ["rotating-squares.gif", "rotating-squares.webp"]) {
      // JPEG output: transparency flattened onto white on both sides of the comparison.
      const response = await get(name, "format=jpeg&quality=95")
      const body = new Uint8Array(await response.arrayBuffer())
      const expected = await sharp(NodeFs.readFileSync(NodePath.join(imagesDir, name)), { pages: 1, page: 0 }).png().toBuffer()
      expect(await meanDiff(body, expected, 80, 80)).toBeLessThan(8)
      expect((await sharp(body).metadata()).pages ?? 1).toBe(1)
    }
  })
})
