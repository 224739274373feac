/**
 * Preview benchmark (`npm run bench:preview`): the same inputs through wasm-vips and @jsquash (in
 * the worker pool) and through sharp (native, the anchor), then cached hits over HTTP.
 *
 * - CPU ms per image: process CPU time (all threads) of each of N sequential images on a pool of one
 *   worker (sharp with concurrency 1); the median is reported (and the mean).
 * - images/s: wall-clock throughput with the pool at its default size (cores) and sharp at its default.
 * - cached-hit requests/s: `GET /api/v1/image` answered from the disk cache by a standalone server.
 * - peak RSS of this process (workers are threads of it).
 * - idle RSS of `troupe start` as `npm start` runs it (its GLIBC_TUNABLES and node flags; embedded
 *   default, 15 s after it is ready, no request; the main process: nothing else runs), with the image
 *   workers started on demand (the default) and, as the baseline, started at once
 *   (`PREVIEW_WORKERS_IDLE_STOP_MS=0`); and what starting them on demand adds to the first image.
 *
 * The last line is one JSON object; `cpu_ratio_to_sharp` is the default engine (wasm-vips) for a
 * 12 MP JPEG → 800 px JPEG.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp, { type SharpOptions } from "sharp"
import type { EngineName, TransformParams } from "../preview/engine/Engine.ts"
import * as Pool from "../preview/engine/Pool.ts"
import * as PreviewConfig from "../preview/Config.ts"
import * as Server from "../preview/Server.ts"
import { freePort } from "../preview/testing/harness.ts"
import { stop, waitFor } from "../runtime/testing/process.ts"
import { spawnStart } from "./npm-start.ts"
import { fixturesDir } from "../runtime/testing/fixtures.ts"

const say = (line: string) => process.stdout.write(line + "\n")
const cores = typeof NodeOs.availableParallelism === "function" ? NodeOs.availableParallelism() : NodeOs.cpus().length
const quick = process.argv.includes("--quick")

let peakRss = 0
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
}, 25)
sampler.unref()

const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** A 12 MP photo-like JPEG (a fixture upscaled with grain, so it does not compress to nothing). */
const makeInput = async (): Promise<Uint8Array> => {
  const source = NodePath.join(fixturesDir(), "images", "Landscape_6.jpg")
  const base = NodeFs.existsSync(source)
    ? await sharp(source).rotate().resize(4000, 3000, { fit: "fill" }).raw().toBuffer()
    : await sharp({ create: { width: 4000, height: 3000, channels: 3, background: "#6a8caf" } }).raw().toBuffer()
  const grain: SharpOptions = { create: { width: 4000, height: 3000, channels: 3, background: "#000000", noise: { type: "gaussian", mean: 128, sigma: 12 } } }
  const noise = await sharp(grain).raw().toBuffer()
  for (let i = 0; i < base.length; i++) base[i] = Math.max(0, Math.min(255, base[i]! + noise[i]! - 128))
  return new Uint8Array(await sharp(base, { raw: { width: 4000, height: 3000, channels: 3 } }).jpeg({ quality: 90 }).toBuffer())
}

const params: TransformParams = { maxWidth: 800, maxHeight: 800, quality: 80, format: "jpeg" }
const limits = { maxPixels: 50_000_000, maxFrames: 1000 }

interface Figures {
  /** Median CPU ms per image. */
  readonly cpu_ms_per_image: number
  readonly cpu_ms_per_image_mean: number
  readonly images_per_second: number
  readonly output: string
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits

/** CPU ms of each run of `task`; the median resists the noise of a shared machine better than the mean. */
const cpuPerRun = async (runs: number, task: () => Promise<unknown>) => {
  const samples: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const c0 = cpuMs()
    await task()
    samples.push(cpuMs() - c0)
  }
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  return { median, mean: samples.reduce((a, b) => a + b, 0) / samples.length }
}

const benchEngine = async (engine: EngineName, input: Uint8Array, sequential: number, parallel: number): Promise<Figures> => {
  const single = Pool.makePool({ engine, size: 1, timeoutMs: 120_000, maxWorkerMemoryBytes: 4 * 1024 ** 3, maxJobsPerWorker: 0, maxQueue: 1024 })
  await single.ready()
  const warm = await single.submit(input.slice(), params, limits)
  const cpu = await cpuPerRun(sequential, () => single.submit(input.slice(), params, limits))
  await single.close()

  const pool = Pool.makePool({ engine, size: cores, timeoutMs: 120_000, maxWorkerMemoryBytes: 4 * 1024 ** 3, maxJobsPerWorker: 0, maxQueue: 1024 })
  await pool.ready()
  await Promise.all(Array.from({ length: cores }, () => pool.submit(input.slice(), params, limits)))
  const t0 = performance.now()
  await Promise.all(Array.from({ length: parallel }, () => pool.submit(input.slice(), params, limits)))
  const perSecond = parallel / ((performance.now() - t0) / 1000)
  await pool.close()
  return { cpu_ms_per_image: round(cpu.median), cpu_ms_per_image_mean: round(cpu.mean), images_per_second: round(perSecond, 2), output: `${warm.width}x${warm.height} ${warm.bytes.byteLength} B` }
}

const benchSharp = async (input: Uint8Array, sequential: number, parallel: number): Promise<Figures> => {
  const run = () => sharp(input).rotate().resize(800, 800, { fit: "inside", withoutEnlargement: true }).jpeg({ quality: 80 }).toBuffer({ resolveWithObject: true })
  const defaultConcurrency = sharp.concurrency()
  sharp.concurrency(1)
  const warm = await run()
  const cpu = await cpuPerRun(sequential, run)
  sharp.concurrency(defaultConcurrency)
  const t0 = performance.now()
  const queue = Array.from({ length: parallel }, (_, i) => i)
  await Promise.all(Array.from({ length: cores }, async () => {
    while (queue.pop() !== undefined) await run()
  }))
  const perSecond = parallel / ((performance.now() - t0) / 1000)
  return { cpu_ms_per_image: round(cpu.median), cpu_ms_per_image_mean: round(cpu.mean), images_per_second: round(perSecond, 2), output: `${warm.info.width}x${warm.info.height} ${warm.data.byteLength} B` }
}

/** Cached hits over HTTP: one standalone server, one origin, `requests` GETs at `concurrency`. */
const benchCachedHits = async (input: Uint8Array, requests: number, concurrency: number) => {
  const origin = NodeHttp.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "image/jpeg" })
    res.end(input)
  })
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
  const originPort = (origin.address() as NodeNet.AddressInfo).port
  const port = await freePort()
  const config = PreviewConfig.make({
    cacheDir: NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "bench-preview-")),
    http: { host: "127.0.0.1", port },
    allowedPrivateHosts: [`127.0.0.1:${originPort}`],
    pool: { workers: cores },
    security: { anonymous: true }
  })
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(
    Layer.buildWithScope(Server.layerStandalone(config, { version: "bench", admin: { host: "127.0.0.1", port: 0, token: Option.none() } }).pipe(Layer.provide(Logger.minimumLogLevel(LogLevel.Error))), scope)
  )
  const url = `http://127.0.0.1:${port}/api/v1/image?url=${encodeURIComponent(`http://127.0.0.1:${originPort}/photo.jpg`)}&max_width=800&format=jpeg`
  const first = await fetch(url)
  await first.arrayBuffer()
  if (first.status !== 200) throw new Error(`warm-up request failed with ${first.status}`)
  let done = 0
  let hits = 0
  const agent = new NodeHttp.Agent({ keepAlive: true, maxSockets: concurrency })
  const get = () =>
    new Promise<void>((resolve, reject) => {
      NodeHttp.get(url, { agent }, (res) => {
        if (res.headers["x-preview-cache"] === "hit") hits++
        res.resume()
        res.on("end", resolve)
      }).on("error", reject)
    })
  const t0 = performance.now()
  const c0 = cpuMs()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (done < requests) {
      done++
      await get()
    }
  }))
  const perSecond = requests / ((performance.now() - t0) / 1000)
  const cpuPerHit = (cpuMs() - c0) / requests
  agent.destroy()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await new Promise<void>((resolve) => origin.close(() => resolve()))
  return { requests_per_second: round(perSecond), cpu_ms_per_request: round(cpuPerHit, 2), hit_ratio: round(hits / requests, 3) }
}

/** RSS of `troupe start` after it has idled for `idleMs`, with extra environment. */
const idleRss = async (env: Record<string, string>, idleMs: number): Promise<number> => {
  const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-bench-idle-"))
  const port = await freePort()
  const proc = spawnStart({ TROUPE_DATA_DIR: dataDir, TROUPE_PORT: String(port), TROUPE_HOST: "127.0.0.1", TROUPE_LOG_LEVEL: "warning", ...env })
  try {
    await waitFor(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 180_000 })
    await new Promise((r) => setTimeout(r, idleMs))
    const status = NodeFs.readFileSync(`/proc/${proc.child.pid}/status`, "utf8")
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
  } finally {
    await stop(proc, "SIGTERM")
    NodeFs.rmSync(dataDir, { recursive: true, force: true })
  }
}

/** The first image through a pool that starts its workers on demand, against the next one. */
const coldStart = async (input: Uint8Array) => {
  const pool = Pool.makePool({ engine: "vips", size: cores, timeoutMs: 120_000, maxWorkerMemoryBytes: 4 * 1024 ** 3, maxJobsPerWorker: 0, maxQueue: 64, idleStopMs: 60_000 })
  const params: TransformParams = { maxWidth: 800, maxHeight: 800, quality: 80, format: "jpeg" }
  const limits = { maxPixels: 50_000_000, maxFrames: 1000 }
  const time = async () => {
    const copy = input.slice() // the pool hands its buffer to the worker
    const t0 = performance.now()
    await pool.submit(copy, params, limits)
    return performance.now() - t0
  }
  const first = await time()
  const warm = await time()
  await pool.close()
  return { first_ms: round(first), warm_ms: round(warm), added_ms: round(first - warm) }
}

const main = async () => {
  say(`preview benchmark — ${NodeOs.cpus()[0]?.model ?? "cpu"} x${cores}, Node ${process.version}, ${new Date().toISOString()}${quick ? " (quick)" : ""}`)
  const input = await makeInput()
  const meta = await sharp(input).metadata()
  say(`input: ${meta.width}x${meta.height} JPEG, ${input.byteLength} bytes → 800 px JPEG q80`)
  const n = quick ? { vips: 3, jsquash: 1, sharp: 3, par: 4, jpar: 2, req: 300 } : { vips: 12, jsquash: 4, sharp: 12, par: 16, jpar: 4, req: 3000 }

  const sharpFigures = await benchSharp(input, n.sharp, n.par)
  say(`sharp    : ${sharpFigures.cpu_ms_per_image} CPU ms/image, ${sharpFigures.images_per_second} images/s (${sharpFigures.output})`)
  const vips = await benchEngine("vips", input, n.vips, n.par)
  say(`wasm-vips: ${vips.cpu_ms_per_image} CPU ms/image, ${vips.images_per_second} images/s with ${cores} workers (${vips.output}) — ${round(vips.cpu_ms_per_image / sharpFigures.cpu_ms_per_image, 2)}x sharp CPU`)
  const jsquash = await benchEngine("jsquash", input, n.jsquash, n.jpar)
  say(`@jsquash : ${jsquash.cpu_ms_per_image} CPU ms/image, ${jsquash.images_per_second} images/s with ${cores} workers (${jsquash.output}) — ${round(jsquash.cpu_ms_per_image / sharpFigures.cpu_ms_per_image, 2)}x sharp CPU`)
  const cached = await benchCachedHits(input, n.req, 32)
  say(`CPU ms/image are medians of the sequential runs; means: sharp ${sharpFigures.cpu_ms_per_image_mean}, wasm-vips ${vips.cpu_ms_per_image_mean}, @jsquash ${jsquash.cpu_ms_per_image_mean}`)
  say(`cached hits: ${cached.requests_per_second} requests/s, ${cached.cpu_ms_per_request} CPU ms/request client+server (hit ratio ${cached.hit_ratio}, 32 concurrent, keep-alive, same process)`)
  say(`peak RSS: ${round(peakRss / 1024 / 1024)} MB`)
  const idleMs = quick ? 10_000 : 15_000
  const lazyIdle = await idleRss({}, idleMs)
  const eagerIdle = await idleRss({ PREVIEW_WORKERS_IDLE_STOP_MS: "0" }, idleMs)
  say(`troupe start idle RSS after ${idleMs / 1000} s: ${round(lazyIdle / 1024 / 1024)} MB with image workers on demand, ${round(eagerIdle / 1024 / 1024)} MB with them started at once (${round(lazyIdle / eagerIdle, 2)}x)`)
  const cold = await coldStart(input)
  say(`first image through an idle pool: ${cold.first_ms} ms, the next ${cold.warm_ms} ms (starting the workers adds ${cold.added_ms} ms)`)

  const ratio = round(vips.cpu_ms_per_image / sharpFigures.cpu_ms_per_image, 2)
  say(JSON.stringify({
    benchmark: "preview",
    input: "12MP JPEG -> 800px JPEG q80",
    cores,
    sharp: sharpFigures,
    vips,
    jsquash,
    jsquash_ratio_to_sharp: round(jsquash.cpu_ms_per_image / sharpFigures.cpu_ms_per_image, 2),
    cached_hits_per_second: cached.requests_per_second,
    cached_hit_cpu_ms: cached.cpu_ms_per_request,
    peak_rss_mb: round(peakRss / 1024 / 1024),
    idle_rss_mb: round(lazyIdle / 1024 / 1024),
    idle_rss_eager_workers_mb: round(eagerIdle / 1024 / 1024),
    idle_rss_target_mb: 300,
    first_image_added_ms: cold.added_ms,
    target_ratio: 2.5,
    meets_target: ratio <= 2.5,
    cpu_ratio_to_sharp: ratio
  }))
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
    process.exit(1)
  }
)
