/**
 * Uploads benchmark (`npm run bench:uploads`): 20 MB JPEGs uploaded 4 at a time to the real
 * `troupe start` role (in this process, embedded database, filesystem blob store, the default
 * uploads settings: one image worker), then followed to `ready`.
 *
 * - accepted MB/s: bytes of all uploads over the wall time until every upload was answered (202);
 *   the body is streamed to disk, hashed, sniffed and checked before the answer.
 * - time to ready: from the start of an upload to `ready` (encrypted, stored, WebP preview made);
 *   median and max.
 * - peak RSS of this process (the server, its image worker threads and the client).
 * - the anchor: the same JPEG → ≤1024 px WebP through sharp (native), ms per image, sequential;
 *   `ready_ratio_to_sharp` = median time to ready of one upload alone / sharp's time.
 *
 * The last line is one JSON object.
 */
import sharp from "sharp"
import { initialInvite, request, startServer } from "../gateway/testing/server.ts"

const say = (line: string) => process.stdout.write(line + "\n")
const quick = process.argv.includes("--quick")
const count = quick ? 4 : 8
const concurrency = 4

let peakRss = 0
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
}, 25)
sampler.unref()

/** A ~20 MB JPEG (noise at high quality does not compress). */
const makeJpeg = async (): Promise<Buffer> =>
  sharp({ create: { width: 4600, height: 3450, channels: 3, background: "#000000", noise: { type: "gaussian", mean: 128, sigma: 70 } } }).jpeg({ quality: 100, chromaSubsampling: "4:4:4" }).toBuffer()

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const main = async () => {
  const jpeg = await makeJpeg()
  say(`input: ${(jpeg.byteLength / 2 ** 20).toFixed(1)} MB JPEG, ${count} uploads, ${concurrency} at a time`)
  // distinct files (uploads are de-duplicated per user): a different trailer after the end marker
  const files = Array.from({ length: count + 1 }, (_, i) => Buffer.concat([jpeg, Buffer.from(`trailer-${i}`)]))

  const server = await startServer({ uploads: { UPLOADS_MAX_FILE_SIZE: "64MB" }, logLevel: "none" })
  try {
    const invite = initialInvite(server.dataDir)
    await request(server, "POST", "/v1/auth/signup", { body: { email: "bench@example.com", username: "bench", password: "a long password 1", invite_code: invite } })
    const login = await request(server, "POST", "/v1/auth/login", { body: { login: "bench", password: "a long password 1" } })
    const token = login.body.access_token as string

    const upload = async (bytes: Buffer, name: string) => {
      const started = performance.now()
      const res = await fetch(`${server.url}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "image/jpeg", "x-file-name": name }, body: new Uint8Array(bytes) })
      const body = (await res.json()) as { id: string; status: string }
      if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${JSON.stringify(body)}`)
      const answered = performance.now()
      for (;;) {
        const r = await request(server, "GET", `/v1/uploads/${body.id}`, { token })
        if (r.body.status === "ready") break
        if (r.body.status !== "processing") throw new Error(`upload ${r.body.status}: ${JSON.stringify(r.body)}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return { answeredMs: answered - started, readyMs: performance.now() - started, answeredAt: answered }
    }

    // one alone first (it also starts the image worker): the time to ready of a single upload
    const alone = await upload(files[count]!, "alone.jpg")
    say(`one upload alone: answered in ${alone.answeredMs.toFixed(0)} ms, ready in ${alone.readyMs.toFixed(0)} ms (includes the worker's start)`)
    const single = await upload(Buffer.concat([jpeg, Buffer.from("single")]), "single.jpg")
    say(`one upload alone, warm: answered in ${single.answeredMs.toFixed(0)} ms, ready in ${single.readyMs.toFixed(0)} ms`)

    const started = performance.now()
    const results: Array<{ answeredMs: number; readyMs: number; answeredAt: number }> = []
    let next = 0
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++
        results.push(await upload(files[i]!, `photo-${i}.jpg`))
      }
    }))
    const lastAnswer = Math.max(...results.map((r) => r.answeredAt)) - started
    const totalMb = (jpeg.byteLength * count) / 2 ** 20
    const acceptedMbps = totalMb / (lastAnswer / 1000)
    const readyTimes = results.map((r) => r.readyMs)
    say(`${count} uploads, ${concurrency} concurrent: accepted ${acceptedMbps.toFixed(1)} MB/s; time to ready median ${median(readyTimes).toFixed(0)} ms, max ${Math.max(...readyTimes).toFixed(0)} ms`)

    // the anchor: sharp, native, the same preview
    const sharpTimes: Array<number> = []
    for (let i = 0; i < 3; i++) {
      const t = performance.now()
      await sharp(jpeg).rotate().resize(1024, 1024, { fit: "inside", withoutEnlargement: true }).webp({ quality: 80 }).toBuffer()
      sharpTimes.push(performance.now() - t)
    }
    const sharpMs = median(sharpTimes)
    say(`sharp (anchor): 20 MB JPEG → 1024 px WebP in ${sharpMs.toFixed(0)} ms`)
    say(`peak RSS (server + workers + client): ${(peakRss / 2 ** 20).toFixed(0)} MB`)
    say(JSON.stringify({
      bench: "uploads",
      file_mb: Math.round((jpeg.byteLength / 2 ** 20) * 10) / 10,
      uploads: count,
      concurrency,
      accepted_mb_per_s: Math.round(acceptedMbps * 10) / 10,
      ready_ms_median: Math.round(median(readyTimes)),
      ready_ms_max: Math.round(Math.max(...readyTimes)),
      ready_ms_single: Math.round(single.readyMs),
      sharp_preview_ms: Math.round(sharpMs),
      ready_ratio_to_sharp: Math.round((single.readyMs / sharpMs) * 10) / 10,
      peak_rss_mb: Math.round(peakRss / 2 ** 20)
    }))
  } finally {
    await server.close()
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench:uploads failed: ${e instanceof Error ? e.stack : String(e)}\n`)
    process.exit(1)
  }
)
