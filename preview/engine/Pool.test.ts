import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { imagesDir } from "../testing/harness.ts"
import { checkLimits, EngineFailure, fitWithin } from "./Engine.ts"
import * as Pool from "./Pool.ts"

const read = (name: string) => new Uint8Array(NodeFs.readFileSync(NodePath.join(imagesDir, name)))
const params = { maxWidth: 64, maxHeight: 64, quality: 80, format: "jpeg" as const }
const limits = { maxPixels: 50_000_000, maxFrames: 1000 }
const base: Pool.PoolOptions = { engine: "vips", size: 1, timeoutMs: 30_000, maxWorkerMemoryBytes: 4 * 1024 ** 3, maxJobsPerWorker: 0, maxQueue: 16 }

const pools: Array<ReturnType<typeof Pool.makePool>> = []
const make = (options: Partial<Pool.PoolOptions>) => {
  const pool = Pool.makePool({ ...base, ...options })
  pools.push(pool)
  return pool
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()))
})

const failure = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (e) {
    return e as Pool.ImageError
  }
  throw new Error("expected a failure")
}

/** The CMYK fixture with its frame header claiming 3 components: passes the header checks, then aborts MozJPEG. */
const lyingCmyk = () => {
  const b = read("Channel_digital_image_CMYK_color_no_profile.jpg").slice()
  for (let i = 2; i + 9 < b.length; i++) {
    if (b[i] === 0xff && b[i + 1] === 0xc0) {
      b[i + 9] = 3
      return b
    }
  }
  throw new Error("no SOF0 marker")
}

describe("image pool", () => {
  it("replaces a worker that holds more WebAssembly memory than allowed, and keeps serving", async () => {
    const pool = make({ maxWorkerMemoryBytes: 1 })
    const first = await pool.submit(read("concert.jpg"), params, limits)
    expect([first.width, first.height]).toEqual([64, 43])
    await pool.ready()
    const second = await pool.submit(read("concert.jpg"), params, limits)
    expect(second.width).toBe(64)
    expect(pool.stats().recycled).toBeGreaterThanOrEqual(2)
  })

  it("replaces a worker after its quota of jobs", async () => {
    const pool = make({ maxJobsPerWorker: 2 })
    for (let i = 0; i < 3; i++) await pool.submit(read("tbgn2c16.png"), params, limits)
    expect(pool.stats().recycled).toBe(1)
  })

  it("kills and replaces a worker whose job exceeds the timeout", async () => {
    const pool = make({ timeoutMs: 1 })
    await pool.ready()
    const e = await failure(pool.submit(read("Landscape_6.jpg"), params, limits))
    expect(e.code).toBe("processing_timeout")
    expect(pool.stats().timeouts).toBe(1)
    // The replacement starts and serves (the timeout is only for the job it killed).
    await pool.ready()
    expect(pool.stats().ready).toBe(1)
  })

  it("contains a codec abort (emscripten ExitStatus) in its worker and replaces the worker", async () => {
    const pool = make({ engine: "jsquash" })
    const e = await failure(pool.submit(lyingCmyk(), params, limits))
    expect(e).toBeInstanceOf(Pool.ImageError)
    expect(["decode_failed", "unsupported_color_space"]).toContain(e.code)
    await pool.ready()
    const ok = await pool.submit(read("concert.jpg"), params, limits)
    expect(ok.width).toBe(64)
  })

  it("with idleStopMs starts no worker until an image comes, and stops them all once idle that long", async () => {
    const pool = make({ size: 2, idleStopMs: 300 })
    await new Promise((r) => setTimeout(r, 200))
    expect(pool.stats().workers).toEqual([])
    const result = await pool.submit(read("tbgn2c16.png"), params, limits)
    expect(result.width).toBeGreaterThan(0)
    expect(pool.stats().workers.length).toBe(2)
    // stopped after the idle time (polled: on a busy host the second worker may start late)
    const deadline = Date.now() + 30_000
    while (pool.stats().workers.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(pool.stats().workers).toEqual([])
    // and started again by the next image
    expect((await pool.submit(read("tbgn2c16.png"), params, limits)).width).toBe(result.width)
    expect(pool.stats().completed).toBe(2)
  })

  it("refuses work beyond its queue bound with overloaded", async () => {
    const pool = make({ maxQueue: 1 })
    await pool.ready()
    const jobs = [pool.submit(read("concert.jpg"), params, limits), pool.submit(read("concert.jpg"), params, limits)]
    const third = await failure(pool.submit(read("concert.jpg"), params, limits))
    expect(third.code).toBe("overloaded")
    await Promise.all(jobs)
  })

  it("as a service, maps failures to typed ImageErrors", async () => {
    const result = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const { ImagePool } = Pool
          const pool = yield* ImagePool
          return yield* Effect.either(pool.transform(read("corrupt-header.jpg"), params, limits))
        }).pipe(Effect.provide(Pool.layer(base)), Effect.provide(Logger.minimumLogLevel(LogLevel.Error)))
      )
    )
    expect(Either.isLeft(result) && result.left._tag).toBe("ImageError")
  })
})

describe("engine helpers", () => {
  it("fits within a box keeping the ratio, never upscaling, 0 meaning unbounded", () => {
    expect(fitWithin(4000, 3000, 800, 800)).toEqual({ width: 800, height: 600 })
    expect(fitWithin(4000, 3000, 0, 300)).toEqual({ width: 400, height: 300 })
    expect(fitWithin(400, 300, 1920, 1080)).toEqual({ width: 400, height: 300 })
    expect(fitWithin(400, 300, 0, 0)).toEqual({ width: 400, height: 300 })
    expect(fitWithin(10_000, 1, 100, 100)).toEqual({ width: 100, height: 1 })
  })

  it("refuses pixel and frame bombs", () => {
    expect(() => checkLimits({ width: 65536, height: 65536, frames: 1 }, limits)).toThrow(EngineFailure)
    expect(() => checkLimits({ width: 10, height: 10, frames: 5000 }, limits)).toThrow(/frames/)
    expect(() => checkLimits({ width: 10, height: 10, frames: 1 }, limits)).not.toThrow()
  })
})
