/**
 * The image worker pool: one engine per worker thread, one job per worker at a time. A worker that
 * holds more WebAssembly memory than allowed (or has served its quota of jobs) is replaced after its
 * job; a worker that exceeds the job timeout is terminated and replaced; a worker that crashes
 * (e.g. an emscripten abort) fails only its own job and is replaced.
 *
 * With `idleStopMs` the pool costs nothing while nobody needs it: no worker starts until the first
 * job, and once every worker has been idle that long they are all stopped (each holds a compiled
 * codec and its WebAssembly memory, tens of MB); the next job starts them again.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as NodeWorker from "node:worker_threads"
import type { EngineFailureCode, EngineName, Limits, TransformParams, TransformResult } from "./Engine.ts"
import type { WorkerReply, WorkerRequest } from "./Protocol.ts"

/** Why an image could not be processed. */
export class ImageError extends Schema.TaggedError<ImageError>()("ImageError", {
  code: Schema.Literal(
    "unsupported_format",
    "unsupported_color_space",
    "image_too_large",
    "too_many_frames",
    "decode_failed",
    "encode_failed",
    "processing_timeout",
    "overloaded",
    "unavailable"
  ),
  message: Schema.String
}) {}

/** Pool settings. */
export interface PoolOptions {
  readonly engine: EngineName
  readonly size: number
  /** A job running longer than this kills its worker. */
  readonly timeoutMs: number
  /** A worker holding more WebAssembly memory than this after a job is replaced. */
  readonly maxWorkerMemoryBytes: number
  /** A worker is replaced after this many jobs (0 = never). */
  readonly maxJobsPerWorker: number
  /** Jobs waiting beyond this are refused with `overloaded`. */
  readonly maxQueue: number
  /** Start workers on the first job and stop them all after this long without one (absent or 0: start at once, keep). */
  readonly idleStopMs?: number
}

/** One worker, as shown in `/health/detailed`. */
export interface WorkerState {
  readonly id: number
  readonly state: "starting" | "idle" | "busy"
  readonly jobs: number
  readonly wasm_memory_bytes: number
}

/** The pool's figures. */
export interface PoolStats {
  readonly engine: EngineName
  readonly size: number
  readonly ready: number
  readonly busy: number
  readonly queued: number
  readonly completed: number
  readonly failed: number
  readonly timeouts: number
  readonly crashes: number
  readonly recycled: number
  readonly start_failures: number
  readonly last_start_error?: string
  readonly workers: ReadonlyArray<WorkerState>
}

/** The pool service. */
export class ImagePool extends Context.Tag("troupe/preview/ImagePool")<ImagePool, {
  readonly transform: (input: Uint8Array, params: TransformParams, limits: Limits) => Effect.Effect<TransformResult, ImageError>
  readonly stats: Effect.Effect<PoolStats>
}>() {}

interface Job {
  readonly id: number
  readonly input: Uint8Array
  readonly params: TransformParams
  readonly limits: Limits
  readonly resolve: (result: TransformResult) => void
  readonly reject: (error: ImageError) => void
  cancelled: boolean
}

interface Slot {
  readonly id: number
  readonly worker: NodeWorker.Worker
  state: "starting" | "idle" | "busy" | "dead"
  jobs: number
  memory: number
  job: Job | undefined
  timer: ReturnType<typeof setTimeout> | undefined
}

const WORKER_URL = new URL("./worker.mjs", import.meta.url)

/** A pool of workers (plain, for tools and benchmarks); `close` terminates them. */
export const makePool = (options: PoolOptions) => {
  const slots = new Set<Slot>()
  const queue: Array<Job> = []
  let nextSlotId = 1
  let nextJobId = 1
  let closed = false
  const counters = { completed: 0, failed: 0, timeouts: 0, crashes: 0, recycled: 0, startFailures: 0 }
  let lastStartError: string | undefined
  let consecutiveStartFailures = 0
  const lazy = (options.idleStopMs ?? 0) > 0
  let idleTimer: ReturnType<typeof setTimeout> | undefined

  const spawn = () => {
    if (closed) return
    const worker = new NodeWorker.Worker(WORKER_URL, { workerData: { engine: options.engine }, stdout: true, stderr: true })
    worker.stdout.resume()
    worker.stderr.resume()
    const slot: Slot = { id: nextSlotId++, worker, state: "starting", jobs: 0, memory: 0, job: undefined, timer: undefined }
    slots.add(slot)
    worker.on("message", (reply: WorkerReply) => onReply(slot, reply))
    worker.on("error", (e) => onDeath(slot, `worker error: ${e.message}`))
    worker.on("exit", (code) => onDeath(slot, `worker exited with code ${code}`))
  }

  const retire = (slot: Slot) => {
    if (slot.state === "dead") return
    slot.state = "dead"
    if (slot.timer) clearTimeout(slot.timer)
    slots.delete(slot)
    void slot.worker.terminate()
  }

  const replace = (slot: Slot) => {
    retire(slot)
    spawn()
  }

  const onDeath = (slot: Slot, reason: string) => {
    if (slot.state === "dead") return
    const wasStarting = slot.state === "starting"
    const job = slot.job
    retire(slot)
    if (closed) return
    if (job) {
      counters.crashes++
      counters.failed++
      job.reject(new ImageError({ code: "decode_failed", message: "the image crashed the decoder" }))
    }
    if (wasStarting) {
      counters.startFailures++
      consecutiveStartFailures++
      lastStartError = reason
      // Back off when workers cannot start at all (a broken install), but keep trying.
      setTimeout(spawn, Math.min(30_000, 250 * 2 ** Math.min(consecutiveStartFailures, 7))).unref()
      return
    }
    spawn()
    dispatch()
  }

  const onReply = (slot: Slot, reply: WorkerReply) => {
    if (slot.state === "dead") return
    switch (reply.type) {
      case "ready":
        slot.state = "idle"
        slot.memory = reply.memory
        consecutiveStartFailures = 0
        dispatch()
        return
      case "failed":
        lastStartError = reply.message
        onDeath(slot, reply.message)
        return
      case "done": {
        const job = slot.job
        if (slot.timer) clearTimeout(slot.timer)
        slot.timer = undefined
        slot.job = undefined
        slot.jobs++
        slot.memory = reply.memory
        slot.state = "idle"
        if (job && job.id === reply.id) {
          if (reply.ok) {
            counters.completed++
            job.resolve(reply.result)
          } else {
            counters.failed++
            job.reject(new ImageError({ code: reply.error.code, message: reply.error.message }))
          }
        }
        const recycle = (!reply.ok && reply.recycle) || slot.memory > options.maxWorkerMemoryBytes ||
          (options.maxJobsPerWorker > 0 && slot.jobs >= options.maxJobsPerWorker)
        if (recycle) {
          counters.recycled++
          replace(slot)
        }
        dispatch()
        return
      }
    }
  }

  /** Stop every worker once all have been idle for `idleStopMs` (lazy pools only). */
  const scheduleIdleStop = () => {
    if (!lazy || closed) return
    if (idleTimer) clearTimeout(idleTimer)
    idleTimer = undefined
    const allIdle = queue.every((j) => j.cancelled) && [...slots].every((s) => s.state === "idle")
    if (!allIdle || slots.size === 0) return
    idleTimer = setTimeout(() => {
      idleTimer = undefined
      if (closed || !queue.every((j) => j.cancelled) || ![...slots].every((s) => s.state === "idle")) return
      for (const slot of [...slots]) retire(slot)
    }, options.idleStopMs)
    idleTimer.unref()
  }

  /** A lazy pool starts its workers when a job comes. */
  const ensureWorkers = () => {
    if (idleTimer) clearTimeout(idleTimer)
    idleTimer = undefined
    while (slots.size < options.size && !closed) spawn()
  }

  const dispatch = () => {
    dispatchJobs()
    scheduleIdleStop()
  }

  const dispatchJobs = () => {
    for (const slot of slots) {
      if (queue.length === 0) return
      if (slot.state !== "idle") continue
      let job = queue.shift()
      while (job && job.cancelled) job = queue.shift()
      if (!job) return
      slot.state = "busy"
      slot.job = job
      const input = job.input.byteOffset === 0 && job.input.byteLength === job.input.buffer.byteLength ? job.input : job.input.slice()
      const request: WorkerRequest = { id: job.id, input: input.buffer as ArrayBuffer, params: job.params, limits: job.limits }
      slot.timer = setTimeout(() => {
        if (slot.job !== job) return
        counters.timeouts++
        counters.failed++
        slot.job = undefined
        job.reject(new ImageError({ code: "processing_timeout", message: `processing took longer than ${options.timeoutMs} ms` }))
        replace(slot)
        dispatch()
      }, options.timeoutMs)
      slot.worker.postMessage(request, [request.input])
    }
  }

  if (!lazy) for (let i = 0; i < options.size; i++) spawn()

  const submit = (input: Uint8Array, params: TransformParams, limits: Limits, onCancel?: (cancel: () => void) => void) =>
    new Promise<TransformResult>((resolve, reject) => {
      if (closed) return reject(new ImageError({ code: "unavailable", message: "the image pool is closed" }))
      if (queue.length >= options.maxQueue) return reject(new ImageError({ code: "overloaded", message: "too many images waiting; try again" }))
      const job: Job = { id: nextJobId++, input, params, limits, resolve, reject, cancelled: false }
      onCancel?.(() => {
        job.cancelled = true
      })
      queue.push(job)
      if (lazy) ensureWorkers()
      dispatch()
    })

  const stats = (): PoolStats => {
    const list = [...slots]
    return {
      engine: options.engine,
      size: options.size,
      ready: list.filter((s) => s.state === "idle" || s.state === "busy").length,
      busy: list.filter((s) => s.state === "busy").length,
      queued: queue.filter((j) => !j.cancelled).length,
      completed: counters.completed,
      failed: counters.failed,
      timeouts: counters.timeouts,
      crashes: counters.crashes,
      recycled: counters.recycled,
      start_failures: counters.startFailures,
      ...(lastStartError ? { last_start_error: lastStartError } : {}),
      workers: list.map((s) => ({ id: s.id, state: s.state === "dead" ? "starting" : s.state, jobs: s.jobs, wasm_memory_bytes: s.memory }))
    }
  }

  /** Resolves once every worker has started (or failed to). */
  const ready = () =>
    new Promise<void>((resolve) => {
      const poll = () => ([...slots].some((s) => s.state === "starting") && !closed ? setTimeout(poll, 20) : resolve())
      poll()
    })

  const close = async () => {
    closed = true
    if (idleTimer) clearTimeout(idleTimer)
    for (const job of queue.splice(0)) job.reject(new ImageError({ code: "unavailable", message: "the image pool is closed" }))
    await Promise.all([...slots].map((s) => {
      s.state = "dead"
      if (s.timer) clearTimeout(s.timer)
      s.job?.reject(new ImageError({ code: "unavailable", message: "the image pool is closed" }))
      return s.worker.terminate()
    }))
    slots.clear()
  }

  return { submit, stats, ready, close }
}

/** The pool as a scoped service (workers are terminated when the scope closes). */
export const layer = (options: PoolOptions): Layer.Layer<ImagePool> =>
  Layer.scoped(
    ImagePool,
    Effect.gen(function*() {
      const pool = yield* Effect.acquireRelease(Effect.sync(() => makePool(options)), (p) => Effect.promise(p.close))
      yield* Effect.logInfo("image pool starting").pipe(Effect.annotateLogs({ engine: options.engine, workers: options.size }))
      return ImagePool.of({
        transform: (input, params, limits) =>
          Effect.async<TransformResult, ImageError>((resume) => {
            let cancel: (() => void) | undefined
            pool.submit(input, params, limits, (c) => {
              cancel = c
            }).then(
              (result) => resume(Effect.succeed(result)),
              (e: unknown) => resume(Effect.fail(e instanceof ImageError ? e : new ImageError({ code: "decode_failed", message: String(e) })))
            )
            return Effect.sync(() => cancel?.())
          }),
        stats: Effect.sync(pool.stats)
      })
    })
  )

/** Codes that describe the input (4xx) rather than the service (5xx). */
export const isInputProblem = (code: ImageError["code"] | EngineFailureCode): boolean =>
  code !== "overloaded" && code !== "unavailable"
