/**
 * The skill host: runs Extism plugins (@extism/extism 2.0.0-rc13, always in worker threads, so
 * untrusted code never runs on the thread that serves requests) under limits it enforces itself.
 *
 * - `load` admits a plugin (imports, exports, ABI, memory; see `Admission.ts`), caps its memory by
 *   rewriting the module's memory maximum, and compiles it once per digest (cached).
 * - `call` runs an export on an instance from the plugin's pool: one call at a time per instance,
 *   at most `poolSize` instances (the core count), a wall-clock timeout enforced by terminating the
 *   worker, input/output caps, and `reset()` after every call. An instance is discarded after any
 *   error, trap or timeout; the next call gets a fresh one.
 * - Failures come back typed: `SkillTimeout`, `SkillMemoryExceeded`, `SkillEgressDenied`,
 *   `SkillFailed`, `InvalidInput` (input too large).
 * - Plugin logs go to Effect's logger; HTTP goes through `runtime/SafeFetch.ts` with the plugin's
 *   `allowedHosts` and the operator's `allowedPrivateHosts`.
 */
import type { ExtismPluginOptions, Plugin as ExtismPlugin } from "@extism/extism"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as NodeCrypto from "node:crypto"
import * as NodeOs from "node:os"
import { MessageChannel, type MessagePort, type Worker } from "node:worker_threads"
import { safeFetch } from "../../runtime/SafeFetch.ts"
import { AdmissionError, InvalidInput, SkillEgressDenied, SkillFailed, SkillMemoryExceeded, SkillTimeout } from "../Errors.ts"
import type { RunError } from "../Errors.ts"
import type { HostFunctionName } from "../manifest/Manifest.ts"
import * as Admission from "./Admission.ts"
import * as HostFunctions from "./HostFunctions.ts"
import { KvStore, type KvScope } from "./KvStore.ts"
import * as Wasm from "./Wasm.ts"

/** What a plugin may use. */
export interface HostLimits {
  /** Cap on each module's linear memory (rewritten into the module). */
  readonly memoryBytes: number
  /** Cap on the Extism buffers of one instance (input, output, vars, HTTP bodies). */
  readonly bufferBytes: number
  readonly timeoutMs: number
  readonly maxInputBytes: number
  readonly maxOutputBytes: number
  readonly maxHttpResponseBytes: number
  readonly maxVarBytes: number
  /** Plugin log lines kept per call (the rest are dropped). */
  readonly maxLogLines: number
}

/** 32 MiB of memory, 5 s, 1 MiB in and out. */
export const defaultLimits: HostLimits = {
  memoryBytes: 32 * 1024 * 1024,
  bufferBytes: 32 * 1024 * 1024,
  timeoutMs: 5_000,
  maxInputBytes: 1024 * 1024,
  maxOutputBytes: 1024 * 1024,
  maxHttpResponseBytes: 4 * 1024 * 1024,
  maxVarBytes: 1024 * 1024,
  maxLogLines: 100
}

/** A plugin to load. */
export interface PluginSpec {
  /** A label for errors and logs (the app id, a file name). */
  readonly name?: string
  /** The modules; the one named `main` is called, the others are linked by name. */
  readonly modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>
  readonly wasi?: boolean
  /** Let WASI stdout/stderr through to this process's (off by default: they would mix with logs). */
  readonly wasiOutput?: boolean
  /** Host globs the plugin may reach over HTTP(S); never private or loopback addresses. */
  readonly allowedHosts?: ReadonlyArray<string>
  readonly allowHttpResponseHeaders?: boolean
  /** Extism config (read by the plugin with `config_get`). */
  readonly config?: Readonly<Record<string, string>>
  /** Our host functions granted to the plugin. */
  readonly hostFunctions?: ReadonlyArray<HostFunctionName>
  /** Config keys readable with `secret_get` (values come with each call). */
  readonly secretKeys?: ReadonlyArray<string>
  /** Extra host functions (embedders, tests). */
  readonly functions?: HostFunctions.CustomFunctions
  /** Exports that must exist (the manifest's skills). */
  readonly exports?: ReadonlyArray<string>
  readonly limits?: Partial<HostLimits>
}

/** A single-module plugin spec. */
export const fromBytes = (bytes: Uint8Array, options: Omit<PluginSpec, "modules"> = {}): PluginSpec => ({
  ...options,
  modules: [{ name: "main", bytes }]
})

/** A loaded plugin: admitted, memory-capped, compiled. */
export interface LoadedPlugin {
  readonly id: number
  readonly name: string
  /** sha256 of the modules as given (hex). */
  readonly digest: string
  /** The callable function exports of `main`. */
  readonly exports: ReadonlyArray<string>
  readonly limits: HostLimits
}

/** Who a call is for: scopes the KV store and provides secrets. */
export interface CallOptions {
  /** Label for errors and logs (`app.skill`); default `<plugin>.<export>`. */
  readonly skill?: string
  readonly scope?: KvScope
  readonly secrets?: Readonly<Record<string, string>>
}

/** A successful call. */
export interface CallResult {
  /** The output bytes; `null` when the plugin set none. */
  readonly output: Uint8Array | null
  readonly durationMs: number
}

/** Figures for metrics and benchmarks. */
export interface HostStats {
  readonly plugins: number
  readonly instances: number
  /** Instances of the plugin that has the most (never above the pool size). */
  readonly largestPool: number
  readonly busy: number
  readonly waiting: number
  readonly compiledModules: number
  readonly calls: number
  readonly failures: number
  readonly timeouts: number
  readonly instancesStarted: number
  readonly instancesDiscarded: number
}

/** Options of the host. */
export interface HostOptions {
  /** Instances per plugin; default the number of cores. */
  readonly poolSize?: number
  /** Soft cap on instances over all plugins (idle ones of other plugins are closed to make room). */
  readonly maxInstances?: number
  /** Idle instances are closed after this long; default 60 s. */
  readonly idleTimeoutMs?: number
  /** Bound on starting an instance (worker start and instantiation); default 10 s. */
  readonly startTimeoutMs?: number
  /** Bound on waiting for a free instance; default 30 s. */
  readonly queueTimeoutMs?: number
  /** Operator allowlist of `host:port` that plugins may reach although private. Empty by default. */
  readonly allowedPrivateHosts?: ReadonlyArray<string>
  /** The fetch behind plugin HTTP (default `safeFetch`); tests substitute a mock. */
  readonly egress?: HostFunctions.Egress
  /** Compiled modules kept; default 64. */
  readonly moduleCacheSize?: number
  /** Nice value of plugin worker threads (Linux), so the serving thread wins the CPU; default 10. */
  readonly workerNice?: number
  /** Lowest plugin log level forwarded; default `info`. */
  readonly logLevel?: "trace" | "debug" | "info" | "warn" | "error"
}

/** The service. */
export class SkillHost extends Context.Tag("troupe/skills/host/SkillHost")<SkillHost, {
  readonly load: (spec: PluginSpec) => Effect.Effect<LoadedPlugin, AdmissionError>
  readonly call: (
    plugin: LoadedPlugin,
    exportName: string,
    input: Uint8Array | string,
    options?: CallOptions
  ) => Effect.Effect<CallResult, RunError>
  /** Start instances ahead of the first calls. */
  readonly warm: (plugin: LoadedPlugin, instances?: number) => Effect.Effect<void, SkillFailed>
  /** Close a plugin's instances (it can still be called: new ones start). */
  readonly unload: (plugin: LoadedPlugin) => Effect.Effect<void>
  readonly stats: Effect.Effect<HostStats>
}>() {}

// ---------------------------------------------------------------------------------------------
// Internals

const PRELOAD = new URL("./worker-preload.mjs", import.meta.url).href
const isDeno = "Deno" in globalThis
const encoder = new TextEncoder()
const LOCAL_SCOPE: KvScope = { app: "local", installId: "local", userId: "local" }

/** The SDK's worker-mode plugin, as far as the host needs to reach into it. */
interface BackgroundInternals {
  opts?: { timeoutMs: number | null }
  worker?: Worker | null
  sharedData?: SharedArrayBuffer
}

type Outcome =
  | { readonly _tag: "ok"; readonly output: Uint8Array | null }
  | { readonly _tag: "error"; readonly message: string; readonly pluginError: boolean }
  | { readonly _tag: "timeout" }
  | { readonly _tag: "crashed"; readonly message: string }

const messageOf = (e: unknown): string => {
  if (e instanceof Error) return e.message
  if (e && typeof e === "object" && "message" in e) return String((e as { message: unknown }).message)
  if (typeof e === "symbol") return e.toString()
  return String(e)
}

const TIMEOUT: Outcome = { _tag: "timeout" }

const errorOutcome = (e: unknown): Outcome => {
  const message = messageOf(e)
  return { _tag: "error", message, pluginError: message.startsWith("Plugin-originated error: ") }
}

const MEMORY_MESSAGES = [/memory limit exceeded/i, /Array buffer allocation failed/i, /Invalid array buffer length/i, /out of memory/i]

interface PluginRecord {
  readonly plugin: LoadedPlugin
  readonly modules: ReadonlyArray<{ readonly name: string; readonly module: WebAssembly.Module }>
  readonly spec: PluginSpec
  readonly types: ReadonlyMap<string, Wasm.FuncType>
  readonly pool: Pool
}

/** Reset an instance's Extism buffers at least this often (the SDK never frees them itself). */
const RESET_EVERY_CALLS = 32

class Instance {
  state: HostFunctions.CallState | undefined = undefined
  closed = false
  busy = false
  hostInFlight = 0
  lastHostDone = 0
  lastUsed = performance.now()
  deadReason: string | undefined = undefined
  /** Whose data the Extism buffers hold since the last reset (undefined: clean). */
  dirtyScope: string | undefined = undefined
  callsSinceReset = 0
  bytesSinceReset = 0
  cleanScheduled = false
  plugin!: ExtismPlugin
  worker: Worker | undefined = undefined
  private onDeath: ((reason: string) => void) | undefined = undefined
  private pendingMemory = new Map<number, (bytes: ReadonlyArray<number> | undefined) => void>()
  private nextId = 1

  private port: MessagePort | undefined = undefined

  constructor(readonly id: number, readonly status: SharedArrayBuffer) {}

  private markDead(reason: string) {
    if (this.deadReason !== undefined) return
    this.deadReason = reason
    this.onDeath?.(reason)
  }

  attach(plugin: ExtismPlugin) {
    this.plugin = plugin
    const internals = plugin as unknown as BackgroundInternals
    // Calls are timed by the host (terminating the worker); the SDK's own call timeout restarts the
    // worker instead and can leave a call unanswered, so it only bounds instantiation.
    if (internals.opts) internals.opts.timeoutMs = null
    const worker = internals.worker ?? undefined
    this.worker = worker
    if (worker && !isDeno) {
      const { port1, port2 } = new MessageChannel()
      this.port = port1
      port1.on("message", (m: unknown) => {
        if (m && typeof m === "object" && (m as { type?: unknown }).type === "troupe:memory") {
          const reply = m as { id: number; bytes: ReadonlyArray<number> }
          this.pendingMemory.get(reply.id)?.(reply.bytes)
          this.pendingMemory.delete(reply.id)
        }
      })
      port1.unref()
      worker.postMessage({ type: "troupe:port", port: port2 }, [port2])
    }
    if (worker) {
      // The host decides when workers end; an idle one must not keep the process alive.
      worker.unref()
      worker.on("error", (e) => this.markDead(`the plugin worker failed: ${messageOf(e)}`))
      worker.on("exit", (code) => {
        this.port?.close()
        this.markDead(`the plugin worker exited (code ${code})`)
      })
    }
  }

  /** The byte size of each of the plugin's memories, if the worker answers quickly. */
  memorySizes(): Promise<ReadonlyArray<number> | undefined> {
    const port = this.port
    if (!port || this.deadReason !== undefined) return Promise.resolve(undefined)
    const id = this.nextId++
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingMemory.delete(id)
        resolve(undefined)
      }, 250)
      this.pendingMemory.set(id, (bytes) => {
        clearTimeout(timer)
        resolve(bytes)
      })
      port.postMessage({ type: "troupe:memory", id })
    })
  }

  /** Run one call: settled by the plugin, the timeout, or the worker's death, whichever comes first. */
  run(exportName: string, input: Uint8Array | string, state: HostFunctions.CallState, timeoutMs: number): Promise<Outcome> {
    if (this.busy) return Promise.reject(new Error("instance is not reentrant"))
    if (this.deadReason !== undefined) return Promise.resolve({ _tag: "crashed", message: this.deadReason })
    this.busy = true
    this.state = state
    const token = ++this.runToken
    // One call at a time per instance: its pending state lives on the instance, and the handlers
    // are created once per instance rather than per call (this is the hot path).
    return new Promise<Outcome>((resolve) => {
      this.runResolve = resolve
      this.runTimer = setTimeout(this.onRunTimeout, timeoutMs, token)
      this.onDeath = this.onRunDeath
      this.plugin.call(exportName, input).then(
        (out) => this.settleRun(token, { _tag: "ok", output: out === null ? null : out.bytes() }),
        (e) => this.settleRun(token, errorOutcome(e))
      )
    })
  }

  private runToken = 0
  private runResolve: ((outcome: Outcome) => void) | undefined = undefined
  private runTimer: ReturnType<typeof setTimeout> | undefined = undefined
  private readonly onRunTimeout = (token: number) => this.settleRun(token, TIMEOUT)
  private readonly onRunDeath = (message: string) => this.settleRun(this.runToken, { _tag: "crashed", message })

  private settleRun(token: number, outcome: Outcome) {
    const resolve = this.runResolve
    if (token !== this.runToken || resolve === undefined) return
    this.runResolve = undefined
    clearTimeout(this.runTimer)
    this.runTimer = undefined
    this.onDeath = undefined
    this.busy = false
    resolve(outcome)
  }

  /** Free the Extism buffers of past calls (a round trip to the worker); false when it failed. */
  reset(): Promise<boolean> {
    if (this.deadReason !== undefined || this.closed) return Promise.resolve(false)
    return new Promise((resolve) => {
      let settled = false
      const finish = (ok: boolean) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.onDeath = undefined
        if (ok) {
          this.dirtyScope = undefined
          this.callsSinceReset = 0
          this.bytesSinceReset = 0
        }
        resolve(ok)
      }
      const timer = setTimeout(() => finish(false), 2_000)
      this.onDeath = () => finish(false)
      this.plugin.reset().then((done) => finish(done), () => finish(false))
    })
  }

  /** Discard the instance: terminate its worker without leaving the SDK waiting on it. */
  close() {
    if (this.closed) return
    this.closed = true
    this.state = undefined
    if (this.hostInFlight > 0) {
      // The host function throws when it returns (see HostFunctions), which makes the SDK close
      // the worker itself; terminate anyway if it does not come back.
      const timer = setTimeout(() => this.terminate(), 10_000)
      timer.unref?.()
      return
    }
    this.terminate()
  }

  private terminate() {
    const recentHostCall = performance.now() - this.lastHostDone < 2_000
    void this.plugin?.close().catch(() => undefined)
    if (recentHostCall) unstick(this.plugin)
  }
}

/**
 * After a worker is terminated right after a host function returned, the SDK may be waiting on
 * the shared buffer for the dead worker to read the result, with a 0 ms interval running. Moving
 * the flag lets that wait finish.
 */
const unstick = (plugin: ExtismPlugin | undefined) => {
  const shared = (plugin as unknown as BackgroundInternals | undefined)?.sharedData
  if (!shared) return
  const flag = new Int32Array(shared, 0, 1)
  let rounds = 0
  const timer = setInterval(() => {
    Atomics.add(flag, 0, 1)
    Atomics.notify(flag, 0)
    if (++rounds >= 100) clearInterval(timer)
  }, 10)
  timer.unref?.()
}

interface Waiter {
  readonly resolve: (instance: Instance) => void
  readonly reject: (error: unknown) => void
  settled: boolean
}

class Pool {
  readonly idle: Array<Instance> = []
  readonly waiters: Array<Waiter> = []
  readonly all = new Set<Instance>()
  total = 0
  busy = 0
  /** Instances between a call and their return to idle, freeing buffers (a short round trip). */
  resetting = 0
  closed = false
  lastUsed = performance.now()

  constructor(readonly core: HostCore, readonly record: () => PluginRecord) {}

  /** Free an instance's buffers, then give it back. */
  resetAndRelease(instance: Instance) {
    this.resetting++
    void instance.reset().then((ok) => {
      this.resetting--
      this.release(instance, ok)
    })
  }

  /** An idle instance, if there is one (the most recently used: its worker is the warmest). */
  takeIdle(): Instance | undefined {
    const ready = this.idle.pop()
    if (ready) {
      this.busy++
      this.lastUsed = performance.now()
    }
    return ready
  }

  acquire(queueTimeoutMs: number): { readonly promise: Promise<Instance>; readonly cancel: () => void } {
    this.lastUsed = performance.now()
    if (this.closed) return { promise: Promise.reject(new Error("the skill host is shutting down")), cancel: () => undefined }
    const ready = this.idle.pop()
    if (ready) {
      this.busy++
      return { promise: Promise.resolve(ready), cancel: () => undefined }
    }
    // An instance that is only resetting is about to be free: wait for it rather than start (and
    // then alternate with) a cold one. Concurrent calls still get new instances.
    if (this.total < this.core.poolSize && this.waiters.length >= this.resetting) {
      this.busy++
      return { promise: this.spawn(), cancel: () => undefined }
    }
    let waiter!: Waiter
    const promise = new Promise<Instance>((resolve, reject) => {
      waiter = { resolve, reject, settled: false }
    })
    this.waiters.push(waiter)
    const timer = setTimeout(() => {
      if (waiter.settled) return
      waiter.settled = true
      this.waiters.splice(this.waiters.indexOf(waiter), 1)
      waiter.reject(new QueueTimeout(queueTimeoutMs))
    }, queueTimeoutMs)
    return {
      promise: promise.finally(() => clearTimeout(timer)),
      cancel: () => {
        clearTimeout(timer)
        if (!waiter.settled) {
          waiter.settled = true
          this.waiters.splice(this.waiters.indexOf(waiter), 1)
        }
      }
    }
  }

  private spawn(): Promise<Instance> {
    this.total++
    this.core.instances++
    if (this.core.instances > this.core.maxInstances) this.core.evictIdle(this)
    return this.core.createInstance(this.record()).then(
      (instance) => {
        this.all.add(instance)
        if (this.closed) instance.close()
        return instance
      },
      (e) => {
        this.total--
        this.busy--
        this.core.instances--
        throw e
      }
    )
  }

  /** Give an instance back; `keep: false` discards it. */
  release(instance: Instance, keep: boolean) {
    this.lastUsed = performance.now()
    if (!keep || this.closed || instance.closed || instance.deadReason !== undefined) {
      this.discard(instance)
      this.busy--
      this.serveNextWithNew()
      return
    }
    instance.lastUsed = performance.now()
    const waiter = this.takeWaiter()
    if (waiter) waiter.resolve(instance)
    else {
      this.busy--
      this.idle.push(instance)
      if (instance.dirtyScope !== undefined) this.scheduleClean(instance)
    }
  }

  /** An instance left idle with a caller's data in its buffers is reset soon after. */
  private scheduleClean(instance: Instance) {
    if (instance.cleanScheduled) return
    instance.cleanScheduled = true
    const timer = setTimeout(() => {
      instance.cleanScheduled = false
      const at = this.idle.indexOf(instance)
      if (at < 0 || instance.dirtyScope === undefined || this.closed) return
      this.idle.splice(at, 1)
      this.busy++
      this.resetAndRelease(instance)
    }, 50)
    timer.unref?.()
  }

  private takeWaiter(): Waiter | undefined {
    while (this.waiters.length > 0) {
      const w = this.waiters.shift()!
      if (!w.settled) {
        w.settled = true
        return w
      }
    }
    return undefined
  }

  private serveNextWithNew() {
    if (this.total >= this.core.poolSize) return
    const waiter = this.takeWaiter()
    if (!waiter) return
    this.busy++
    this.spawn().then(waiter.resolve, waiter.reject)
  }

  discard(instance: Instance) {
    this.all.delete(instance)
    instance.close()
    this.total--
    this.core.instances--
    this.core.discarded++
  }

  closeIdle(olderThan: number): number {
    let closed = 0
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const instance = this.idle[i]!
      if (instance.lastUsed <= olderThan) {
        this.idle.splice(i, 1)
        this.all.delete(instance)
        instance.close()
        this.total--
        this.core.instances--
        closed++
      }
    }
    return closed
  }

  closeAll() {
    for (const w of this.waiters) {
      if (!w.settled) {
        w.settled = true
        w.reject(new Error("the skill host is shutting down"))
      }
    }
    this.waiters.length = 0
    this.closed = true
    this.closeIdle(Number.POSITIVE_INFINITY)
    for (const instance of this.all) instance.close()
  }
}

class QueueTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no plugin instance became free within ${ms} ms`)
  }
}

class StartFailed extends Error {}

class HostCore {
  readonly poolSize: number
  readonly maxInstances: number
  readonly records = new Set<PluginRecord>()
  readonly byKey = new Map<string, PluginRecord>()
  readonly compiled = new Map<string, Promise<WebAssembly.Module>>()
  instances = 0
  calls = 0
  failures = 0
  timeouts = 0
  started = 0
  discarded = 0
  nextPluginId = 1
  nextInstanceId = 1

  constructor(
    readonly options: HostOptions,
    readonly runtime: Runtime.Runtime<never>,
    readonly kv: KvStore["Type"]
  ) {
    this.poolSize = Math.max(1, options.poolSize ?? (NodeOs.availableParallelism?.() ?? NodeOs.cpus().length))
    this.maxInstances = Math.max(this.poolSize, options.maxInstances ?? this.poolSize * 16)
  }

  log(level: "trace" | "debug" | "info" | "warn" | "error", message: string, annotations: Record<string, unknown>) {
    const effect = level === "trace"
      ? Effect.logTrace(message)
      : level === "debug"
      ? Effect.logDebug(message)
      : level === "info"
      ? Effect.logInfo(message)
      : level === "warn"
      ? Effect.logWarning(message)
      : Effect.logError(message)
    Runtime.runFork(this.runtime)(Effect.annotateLogs(effect, annotations))
  }

  evictIdle(except: Pool) {
    let oldest: Pool | undefined
    for (const r of this.records) {
      const pool = r.pool
      if (pool !== except && pool.idle.length > 0 && (!oldest || pool.lastUsed < oldest.lastUsed)) oldest = pool
    }
    const instance = oldest?.idle.shift()
    if (oldest && instance) {
      oldest.all.delete(instance)
      instance.close()
      oldest.total--
      this.instances--
    }
  }

  compile(bytes: Uint8Array, pages: number): Promise<WebAssembly.Module> {
    const key = `${NodeCrypto.createHash("sha256").update(bytes).digest("hex")}:${pages}`
    const cached = this.compiled.get(key)
    if (cached) {
      this.compiled.delete(key)
      this.compiled.set(key, cached)
      return cached
    }
    const compiled = Promise.resolve().then(() => WebAssembly.compile(Wasm.capMemory(bytes, pages) as Uint8Array<ArrayBuffer>))
    compiled.catch(() => this.compiled.delete(key))
    this.compiled.set(key, compiled)
    const max = this.options.moduleCacheSize ?? 64
    while (this.compiled.size > max) this.compiled.delete(this.compiled.keys().next().value!)
    return compiled
  }

  async createInstance(record: PluginRecord): Promise<Instance> {
    const { plugin, spec } = record
    const status = new SharedArrayBuffer(8 + 4096)
    const instance = new Instance(this.nextInstanceId++, status)
    const hooks: HostFunctions.InstanceHooks = {
      current: () => instance.state,
      closed: () => instance.closed,
      enter: () => {
        instance.hostInFlight++
      },
      leave: () => {
        instance.hostInFlight--
        instance.lastHostDone = performance.now()
      },
      warn: (message) => this.log("warn", message, { plugin: plugin.name, skill: instance.state?.skill ?? "" })
    }
    const functions = HostFunctions.build({
      run: (effect) => Runtime.runPromiseExit(this.runtime)(effect),
      kv: this.kv,
      egress: this.options.egress ?? safeFetch,
      allowedHosts: spec.allowedHosts ?? [],
      allowedPrivateHosts: this.options.allowedPrivateHosts ?? [],
      maxHttpResponseBytes: plugin.limits.maxHttpResponseBytes,
      allowHttpResponseHeaders: spec.allowHttpResponseHeaders ?? false,
      granted: spec.hostFunctions ?? [],
      secretKeys: new Set(spec.secretKeys ?? []),
      custom: spec.functions ?? {},
      types: record.types
    }, hooks)
    const forward = (level: "trace" | "debug" | "info" | "warn" | "error") => (message: unknown) => {
      const text = typeof message === "string" ? message : messageOf(message)
      const state = instance.state
      if (state && MEMORY_MESSAGES.some((re) => re.test(text))) state.memoryExceeded ??= text
      if (state && level === "error") state.lastErrorLog = text.slice(0, 500)
      if (state && state.logsLeft <= 0) return
      if (state) state.logsLeft--
      this.log(level, text.length > 2000 ? text.slice(0, 2000) + "…" : text, { plugin: plugin.name, skill: state?.skill ?? "", source: "plugin" })
    }
    const logger = { trace: forward("trace"), debug: forward("debug"), info: forward("info"), warn: forward("warn"), error: forward("error") }
    const options: ExtismPluginOptions = {
      runInWorker: true,
      useWasi: spec.wasi ?? false,
      enableWasiOutput: spec.wasiOutput ?? false,
      functions,
      config: { ...(spec.config ?? {}) },
      memory: {
        maxPages: Math.max(1, Math.ceil(plugin.limits.bufferBytes / Wasm.PAGE_BYTES)),
        maxVarBytes: plugin.limits.maxVarBytes
      },
      timeoutMs: this.options.startTimeoutMs ?? 10_000,
      logger: logger as unknown as Console,
      logLevel: this.options.logLevel ?? "info",
      allowHttpResponseHeaders: spec.allowHttpResponseHeaders ?? false,
      nodeWorkerArgs: isDeno
        ? { name: `troupe plugin ${plugin.name}`, execArgv: [] }
        : {
          name: `troupe plugin ${plugin.name}`,
          execArgv: ["--disable-warning=ExperimentalWarning", "--import", PRELOAD],
          workerData: { troupe: { status, nice: this.options.workerNice ?? 10 } },
          resourceLimits: { maxOldGenerationSizeMb: 256 }
        }
    }
    let created: ExtismPlugin
    try {
      // Loaded on first use: importing the SDK loads Node's WASI (and its experimental warning).
      const { createPlugin } = await import("@extism/extism")
      created = await createPlugin({ wasm: record.modules.map((m) => ({ name: m.name, module: m.module })) }, options)
    } catch (e) {
      const flags = new Int32Array(status, 0, 2)
      const detail = Atomics.load(flags, 0) === 1
        ? new TextDecoder().decode(new Uint8Array(status, 8, Atomics.load(flags, 1)))
        : messageOf(e)
      throw new StartFailed(`the plugin failed to start: ${detail}`)
    }
    instance.attach(created)
    this.started++
    return instance
  }
}

const hexDigest = (modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>): string => {
  const hash = NodeCrypto.createHash("sha256")
  if (modules.length === 1) hash.update(modules[0]!.bytes)
  else for (const m of modules) hash.update(`${m.name}\0${m.bytes.byteLength}\0`).update(m.bytes)
  return hash.digest("hex")
}

const resolveLimits = (given: Partial<HostLimits> | undefined): HostLimits => {
  const limits = { ...defaultLimits, ...given }
  if (given?.memoryBytes !== undefined && given.bufferBytes === undefined) limits.bufferBytes = given.memoryBytes
  return limits
}

const load = (core: HostCore, spec: PluginSpec): Effect.Effect<LoadedPlugin, AdmissionError> =>
  Effect.tryPromise({
    try: async (): Promise<LoadedPlugin> => {
      const name = spec.name ?? "plugin"
      const reject = (problems: ReadonlyArray<string>) =>
        new AdmissionError({ problems, message: `plugin ${name} was refused: ${problems.join("; ")}` })
      if (spec.modules.length === 0) throw reject(["no module was given"])
      const modules = spec.modules.length === 1 ? [{ name: "main", bytes: spec.modules[0]!.bytes }] : spec.modules
      const infos: Array<{ name: string; info: Wasm.ModuleInfo }> = []
      for (const m of modules) {
        try {
          infos.push({ name: m.name, info: Wasm.inspect(m.bytes) })
        } catch (e) {
          throw reject([`${modules.length > 1 ? `module "${m.name}": ` : ""}${messageOf(e)}`])
        }
      }
      const problems = Admission.check({
        modules: infos,
        wasi: spec.wasi ?? false,
        granted: spec.hostFunctions ?? [],
        custom: Object.fromEntries(Object.entries(spec.functions ?? {}).map(([ns, fns]) => [ns, Object.keys(fns)])),
        exports: spec.exports ?? []
      })
      if (problems.length > 0) throw reject(problems)
      const limits = resolveLimits(spec.limits)
      const pages = Math.max(1, Math.floor(limits.memoryBytes / Wasm.PAGE_BYTES))
      const digest = hexDigest(modules)
      const key = spec.functions && Object.keys(spec.functions).length > 0 ? undefined : JSON.stringify([
        digest,
        spec.wasi ?? false,
        spec.wasiOutput ?? false,
        [...(spec.allowedHosts ?? [])].sort(),
        spec.allowHttpResponseHeaders ?? false,
        Object.entries(spec.config ?? {}).sort(([a], [b]) => a.localeCompare(b)),
        [...(spec.hostFunctions ?? [])].sort(),
        [...(spec.secretKeys ?? [])].sort(),
        limits,
        name
      ])
      const existing = key === undefined ? undefined : core.byKey.get(key)
      if (existing) return existing.plugin
      let compiled: Array<{ name: string; module: WebAssembly.Module }>
      try {
        compiled = await Promise.all(modules.map(async (m) => ({ name: m.name, module: await core.compile(m.bytes, pages) })))
      } catch (e) {
        if (e instanceof Wasm.MemoryTooSmall) throw reject([e.message])
        throw reject([`does not compile: ${messageOf(e)}`])
      }
      const types = new Map<string, Wasm.FuncType>()
      for (const { info } of infos) {
        for (const imp of info.imports) if (imp.type) types.set(`${imp.module}::${imp.name}`, imp.type)
      }
      const mainInfo = infos.find((i) => i.name === "main")!.info
      const plugin: LoadedPlugin = {
        id: core.nextPluginId++,
        name,
        digest,
        exports: mainInfo.exports.filter((e) => e.kind === "function").map((e) => e.name),
        limits
      }
      let record!: PluginRecord
      const pool = new Pool(core, () => record)
      record = { plugin, modules: compiled, spec, types, pool }
      core.records.add(record)
      if (key !== undefined) core.byKey.set(key, record)
      recordOf.set(plugin, record)
      return plugin
    },
    catch: (e) => e instanceof AdmissionError ? e : new AdmissionError({ problems: [messageOf(e)], message: `plugin was refused: ${messageOf(e)}` })
  })

const recordOf = new WeakMap<LoadedPlugin, PluginRecord>()

/** Classify a failed call. */
const failure = async (
  instance: Instance,
  outcome: Exclude<Outcome, { _tag: "ok" }>,
  state: HostFunctions.CallState,
  limits: HostLimits
): Promise<RunError> => {
  const skill = state.skill
  if (outcome._tag === "timeout") {
    return new SkillTimeout({ skill, timeoutMs: limits.timeoutMs, message: `${skill} did not finish within ${limits.timeoutMs} ms (timeout)` })
  }
  if (state.egressDenied) {
    return new SkillEgressDenied({ skill, url: state.egressDenied.url, reason: state.egressDenied.reason, message: state.egressDenied.message })
  }
  const memoryError = (detail: string) =>
    new SkillMemoryExceeded({
      skill,
      limitBytes: limits.memoryBytes,
      message: `${skill} exceeded its memory limit (${Wasm.formatBytes(limits.memoryBytes)}): ${detail}`
    })
  if (state.memoryExceeded) return memoryError(state.memoryExceeded)
  if (outcome._tag === "crashed") {
    if (/ERR_WORKER_OUT_OF_MEMORY|out of memory/i.test(outcome.message)) return memoryError(outcome.message)
    return new SkillFailed({ skill, reason: "crashed", message: `${skill} crashed: ${outcome.message}` })
  }
  if (MEMORY_MESSAGES.some((re) => re.test(outcome.message))) return memoryError(outcome.message)
  if (outcome.pluginError) {
    return new SkillFailed({ skill, reason: "plugin_error", message: `${skill} failed: ${outcome.message.replace(/^Plugin-originated error: /, "")}` })
  }
  const sizes = await instance.memorySizes()
  if (sizes && sizes.some((bytes) => bytes >= limits.memoryBytes * 0.9)) {
    return memoryError(`trapped (${outcome.message}) with ${Wasm.formatBytes(Math.max(...sizes))} of memory in use`)
  }
  const logged = state.lastErrorLog ? ` (it logged: ${state.lastErrorLog})` : ""
  return new SkillFailed({ skill, reason: "trap", message: `${skill} trapped: ${outcome.message}${logged}` })
}

const call = (
  core: HostCore,
  plugin: LoadedPlugin,
  exportName: string,
  input: Uint8Array | string,
  options: CallOptions
): Effect.Effect<CallResult, RunError> =>
  Effect.async<CallResult, RunError>((resume) => {
    const record = recordOf.get(plugin)
    const skill = options.skill ?? `${plugin.name}.${exportName}`
    const limits = plugin.limits
    if (!record) {
      resume(Effect.fail(new SkillFailed({ skill, reason: "crashed", message: `${skill}: the plugin is not loaded in this host` })))
      return
    }
    // Strings go to the SDK as they are (it encodes them once); their UTF-8 size is only computed
    // when it could exceed the cap.
    const inputBytes = typeof input === "string"
      ? (input.length * 3 <= limits.maxInputBytes ? input.length : encoder.encode(input).byteLength)
      : input.byteLength
    if (inputBytes > limits.maxInputBytes) {
      resume(Effect.fail(
        new InvalidInput({
          skill,
          message: `the input is ${inputBytes} bytes; ${skill} accepts at most ${limits.maxInputBytes}`,
          issues: [{ path: "(root)", message: `is larger than ${limits.maxInputBytes} bytes` }]
        })
      ))
      return
    }
    if (!plugin.exports.includes(exportName)) {
      resume(Effect.fail(new SkillFailed({ skill, reason: "crashed", message: `${skill}: the plugin does not export a function "${exportName}"` })))
      return
    }
    core.calls++
    const job = new CallJob(core, record.pool, exportName, input, inputBytes, options, skill, limits, resume)
    const idle = record.pool.takeIdle()
    if (idle) job.start(idle)
    else job.wait()
    return Effect.sync(() => job.interrupt())
  })

/** One call in flight (a class, not closures: this is the hot path). */
class CallJob {
  instance: Instance | undefined = undefined
  finished = false
  cancelWait: (() => void) | undefined = undefined
  state: HostFunctions.CallState | undefined = undefined
  started = 0
  readonly scopeKey: string

  constructor(
    readonly core: HostCore,
    readonly pool: Pool,
    readonly exportName: string,
    readonly input: Uint8Array | string,
    readonly inputBytes: number,
    readonly options: CallOptions,
    readonly skill: string,
    readonly limits: HostLimits,
    readonly resume: (effect: Effect.Effect<CallResult, RunError>) => void
  ) {
    this.scopeKey = options.scope ? `${options.scope.app}\u0000${options.scope.installId}\u0000${options.scope.userId}` : ""
  }

  done(effect: Effect.Effect<CallResult, RunError>) {
    if (this.finished) return
    this.finished = true
    this.resume(effect)
  }

  crashed(e: unknown) {
    if (this.instance) this.pool.release(this.instance, false)
    this.done(Effect.fail(new SkillFailed({ skill: this.skill, reason: "crashed", message: `${this.skill}: ${messageOf(e)}` })))
  }

  wait() {
    const lease = this.pool.acquire(this.core.options.queueTimeoutMs ?? 30_000)
    this.cancelWait = lease.cancel
    lease.promise.then((instance) => this.start(instance), (e) => {
      if (e instanceof QueueTimeout) {
        this.done(Effect.fail(new SkillTimeout({ skill: this.skill, timeoutMs: e.ms, message: `${this.skill}: ${e.message} (timeout)` })))
      } else this.done(Effect.fail(new SkillFailed({ skill: this.skill, reason: "crashed", message: `${this.skill}: ${messageOf(e)}` })))
    })
  }

  start(instance: Instance) {
    this.instance = instance
    if (this.finished) {
      this.pool.release(instance, true)
      return
    }
    // Another caller's data may still be in the instance's buffers: free them first.
    if (instance.dirtyScope !== undefined && instance.dirtyScope !== this.scopeKey) {
      instance.reset().then((ok) => (ok ? this.execute(instance) : this.crashed(new Error("the plugin instance could not be reset"))), (e) => this.crashed(e))
    } else this.execute(instance)
  }

  execute(instance: Instance) {
    const started = performance.now()
    this.started = started
    const state: HostFunctions.CallState = {
      skill: this.skill,
      scope: this.options.scope ?? LOCAL_SCOPE,
      secrets: this.options.secrets ?? {},
      deadline: started + this.limits.timeoutMs,
      egressDenied: undefined,
      memoryExceeded: undefined,
      lastErrorLog: undefined,
      logsLeft: this.limits.maxLogLines,
      httpStatus: 0,
      httpHeaders: null
    }
    this.state = state
    instance.run(this.exportName, this.input, state, this.limits.timeoutMs).then((outcome) => this.settle(instance, outcome), (e) => this.crashed(e))
  }

  settle(instance: Instance, outcome: Outcome) {
    const { limits, pool, skill } = this
    const state = this.state!
    const durationMs = performance.now() - this.started
    if (outcome._tag === "ok") {
      const denied = state.egressDenied
      const tooLarge = outcome.output !== null && outcome.output.byteLength > limits.maxOutputBytes
      if (!denied && !tooLarge) {
        instance.state = undefined
        instance.dirtyScope = this.scopeKey
        instance.callsSinceReset++
        instance.bytesSinceReset += this.inputBytes + (outcome.output?.byteLength ?? 0)
        // Buffers are freed every few calls, when they grow, before another caller's call and
        // soon after the instance goes idle: not after every call, which would put a second round
        // trip to the worker on the path of every call.
        if (instance.callsSinceReset >= RESET_EVERY_CALLS || instance.bytesSinceReset > limits.bufferBytes / 4) {
          pool.resetAndRelease(instance)
        } else pool.release(instance, true)
        this.done(Effect.succeed({ output: outcome.output, durationMs }))
        return
      }
      pool.release(instance, false)
      this.core.failures++
      this.done(Effect.fail(
        denied
          ? new SkillEgressDenied({ skill, url: denied.url, reason: denied.reason, message: denied.message })
          : new SkillFailed({
            skill,
            reason: "output_too_large",
            message: `${skill} produced ${outcome.output!.byteLength} bytes of output; the limit is ${limits.maxOutputBytes}`
          })
      ))
      return
    }
    this.core.failures++
    if (outcome._tag === "timeout") this.core.timeouts++
    failure(instance, outcome, state, limits).then((error) => {
      pool.release(instance, false)
      this.done(Effect.fail(error))
    }, (e) => this.crashed(e))
  }

  /** The caller went away: stop waiting, and discard an instance still running the call. */
  interrupt() {
    if (this.finished) return
    this.finished = true
    this.cancelWait?.()
    if (this.instance && this.instance.busy) this.instance.close()
  }
}

/** Build the host (its instances are closed when the scope closes). */
export const make = (options: HostOptions = {}) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const kv = yield* KvStore
    const core = new HostCore(options, runtime, kv)
    const idleMs = options.idleTimeoutMs ?? 60_000
    const reaper = setInterval(() => {
      const olderThan = performance.now() - idleMs
      for (const r of core.records) r.pool.closeIdle(olderThan)
    }, Math.max(1_000, Math.floor(idleMs / 2)))
    reaper.unref?.()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        clearInterval(reaper)
        for (const r of core.records) r.pool.closeAll()
      })
    )
    return SkillHost.of({
      load: (spec) => load(core, spec),
      call: (plugin, exportName, input, callOptions = {}) => call(core, plugin, exportName, input, callOptions),
      warm: (plugin, instances = 1) =>
        Effect.tryPromise({
          try: async () => {
            const record = recordOf.get(plugin)
            if (!record) return
            const leases = Array.from({ length: Math.min(instances, core.poolSize) }, () => record.pool.acquire(core.options.queueTimeoutMs ?? 30_000))
            const got = await Promise.all(leases.map((l) => l.promise))
            for (const instance of got) record.pool.release(instance, true)
          },
          catch: (e) => new SkillFailed({ skill: plugin.name, reason: "crashed", message: `${plugin.name}: ${messageOf(e)}` })
        }),
      unload: (plugin) => Effect.sync(() => recordOf.get(plugin)?.pool.closeIdle(Number.POSITIVE_INFINITY)),
      stats: Effect.sync((): HostStats => {
        let busy = 0
        let waiting = 0
        let largestPool = 0
        for (const r of core.records) {
          busy += r.pool.busy
          waiting += r.pool.waiters.length
          largestPool = Math.max(largestPool, r.pool.total)
        }
        return {
          plugins: core.records.size,
          instances: core.instances,
          largestPool,
          busy,
          waiting,
          compiledModules: core.compiled.size,
          calls: core.calls,
          failures: core.failures,
          timeouts: core.timeouts,
          instancesStarted: core.started,
          instancesDiscarded: core.discarded
        }
      })
    })
  })

/** The host as a layer (needs the KV store behind `kv_get`/`kv_set`). */
export const layer = (options: HostOptions = {}): Layer.Layer<SkillHost, never, KvStore> => Layer.scoped(SkillHost, make(options))
