/**
 * Skill host benchmark (`npm run bench:skills`).
 *
 * - raw SDK: @extism/extism 2.0.0-rc13 `createPlugin(…, { runInWorker: true })` and `call` in a
 *   loop (the baseline: what a caller of the SDK gets, without our limits, reset or pool);
 * - our warm call: `SkillHost.call` (admitted, memory-capped plugin, pool, timeout, reset after every
 *   call) for a trivial export and for 1 KB / 100 KB inputs, each call its own `Effect.runPromise`;
 * - cold start: the first call on a plugin whose instances were closed (compiled module cached);
 * - pool throughput: 16 calls in flight, pool of 1 vs pool of `cores`;
 * - first-party TypeScript skills through `Skills.invoke` for comparison;
 * - the worst event-loop stall of this (serving) thread while plugins burn CPU in every instance.
 *
 * The last line is one JSON object with `warm_call_ratio_to_sdk` (target ≤ 1.5) and
 * `max_event_loop_stall_ms` (target < 20).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Host from "../skills/host/Host.ts"
import * as KvStore from "../skills/host/KvStore.ts"
import * as Project from "../skills/sdk/Project.ts"
import * as Skills from "../skills/Skills.ts"

const say = (line: string) => process.stdout.write(line + "\n")
const cores = typeof NodeOs.availableParallelism === "function" ? NodeOs.availableParallelism() : NodeOs.cpus().length
const quick = process.argv.includes("--quick")
const N = quick ? 300 : 2000

const SOURCE = `
import { Host } from "@extism/as-pdk"
import "./troupe"
let sink: i32 = 0
export function noop(): i32 { return 0 }
export function len(): i32 { const input = Host.input(); Host.output(Uint8Array.wrap(String.UTF8.encode(input.length.toString()))); return 0 }
export function burn(): i32 { let i = 0; while (i >= 0) { i = (i + 1) & 0x3fffffff; sink = i } return 0 }
`

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

/** Run `f` n times sequentially; per-call wall-clock times in ms (after `warmup` calls). */
const timeCalls = async (n: number, f: () => Promise<unknown>, warmup = 50): Promise<ReadonlyArray<number>> => {
  for (let i = 0; i < warmup; i++) await f()
  const times: Array<number> = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await f()
    times.push(performance.now() - t)
  }
  return times
}

/** Lateness of a 5 ms timer while `during` runs: the worst and the 99th percentile, in ms. */
const stalls = async (during: () => Promise<unknown>): Promise<{ readonly worst: number; readonly p99: number }> => {
  const late: Array<number> = []
  let running = true
  let expected = performance.now() + 5
  const tick = () => {
    const now = performance.now()
    late.push(Math.max(0, now - expected))
    expected = now + 5
    if (running) setTimeout(tick, 5)
  }
  setTimeout(tick, 5)
  await during()
  running = false
  const sorted = late.sort((a, b) => a - b)
  return { worst: sorted[sorted.length - 1] ?? 0, p99: sorted[Math.floor(sorted.length * 0.99)] ?? 0 }
}

const main = async () => {
  say(`Skill host benchmark — ${cores} cores, Node ${process.version}, ${new Date().toISOString()}, load ${NodeOs.loadavg().map((l) => l.toFixed(2)).join(" ")}`)

  // Build the trivial plugin from source.
  const dir = await NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "troupe-bench-"))
  await NodeFs.mkdir(NodePath.join(dir, "assembly"))
  await NodeFs.copyFile(Project.SDK_SOURCE, NodePath.join(dir, "assembly", "troupe.ts"))
  await NodeFs.writeFile(NodePath.join(dir, "assembly", "bench.ts"), SOURCE)
  const bytes = await Effect.runPromise(Project.compileSource(dir, "assembly/bench.ts", "build/bench.wasm"))
  await NodeFs.rm(dir, { recursive: true, force: true })
  const kb1 = "x".repeat(1024)
  const kb100 = "x".repeat(100 * 1024)

  // Raw SDK (baseline) and our host, interleaved in rounds so the (noisy, shared) machine's load
  // falls on both alike. The raw plugin is reset between rounds so it does not slow down.
  const { createPlugin } = await import("@extism/extism")
  const raw = await createPlugin({ wasm: [{ data: bytes }] }, { runInWorker: true })
  const quiet = Logger.minimumLogLevel(LogLevel.Warning)
  const runtime = ManagedRuntime.make(
    Skills.layer().pipe(Layer.provideMerge(Host.layer()), Layer.provide(KvStore.layerMemory()), Layer.merge(quiet))
  )
  const host = await runtime.runPromise(Host.SkillHost)
  const plugin = await runtime.runPromise(host.load(Host.fromBytes(bytes, { name: "bench", limits: { timeoutMs: 5_000 } })))
  const call = (exportName: string, input: string) => runtime.runPromise(host.call(plugin, exportName, input))

  const compare = async (exportName: string, input: string, rounds: number, batch: number) => {
    const rawTimes: Array<number> = []
    const fiberTimes: Array<number> = []
    const promiseTimes: Array<number> = []
    for (let r = 0; r < rounds; r++) {
      rawTimes.push(...(await timeCalls(batch, () => raw.call(exportName, input), 5)))
      await raw.reset()
      // Our host as a service uses it: calls inside a fiber.
      await runtime.runPromise(Effect.forEach(Array.from({ length: batch + 5 }), (_, i) =>
        Effect.gen(function*() {
          const t = performance.now()
          yield* host.call(plugin, exportName, input)
          if (i >= 5) fiberTimes.push(performance.now() - t)
        }), { discard: true }))
      // And from plain async code: one Effect.runPromise per call.
      promiseTimes.push(...(await timeCalls(batch, () => call(exportName, input), 5)))
    }
    return { raw: median(rawTimes), fiber: median(fiberTimes), promise: median(promiseTimes) }
  }
  // Process CPU (all threads) per call, a steadier figure than wall time on a shared machine.
  const cpuPerCall = async (n: number, f: () => Promise<unknown>) => {
    const before = process.cpuUsage()
    await f()
    const used = process.cpuUsage(before)
    return (used.user + used.system) / 1000 / n
  }
  const cpuN = quick ? 1000 : 5000
  const rawCpu = await cpuPerCall(cpuN, async () => {
    for (let i = 0; i < cpuN; i++) {
      await raw.call("noop", "")
      if (i % 100 === 99) await raw.reset()
    }
  })
  const oursCpu = await cpuPerCall(cpuN, () => runtime.runPromise(Effect.forEach(Array.from({ length: cpuN }), () => host.call(plugin, "noop", ""), { discard: true })))
  say(`CPU per noop call (all threads): raw SDK ${rawCpu.toFixed(3)} ms, our host ${oursCpu.toFixed(3)} ms`)
  const noop = await compare("noop", "", quick ? 5 : 20, 100)
  const one = await compare("len", kb1, quick ? 5 : 20, 100)
  const hundred = await compare("len", kb100, quick ? 3 : 10, 20)
  await raw.close()
  const rawNoop = noop.raw
  const oursNoop = noop.fiber
  const raw1k = one.raw
  const ours1k = one.fiber
  const raw100k = hundred.raw
  const ours100k = hundred.fiber
  say(`raw SDK worker call: noop ${rawNoop.toFixed(3)} ms, 1 KB ${raw1k.toFixed(3)} ms, 100 KB ${raw100k.toFixed(3)} ms (median)`)
  say(`our warm call:       noop ${oursNoop.toFixed(3)} ms, 1 KB ${ours1k.toFixed(3)} ms, 100 KB ${ours100k.toFixed(3)} ms (median, in a fiber)`)
  say(`  (Effect.runPromise per call: noop ${noop.promise.toFixed(3)} ms, 1 KB ${one.promise.toFixed(3)} ms, 100 KB ${hundred.promise.toFixed(3)} ms)`)
  say(`ratio to raw SDK:    noop ${(oursNoop / rawNoop).toFixed(2)}×, 1 KB ${(ours1k / raw1k).toFixed(2)}×, 100 KB ${(ours100k / raw100k).toFixed(2)}×`)

  // Cold start: close the plugin's instances, then time the next call (module compiled and cached).
  const colds: Array<number> = []
  for (let i = 0; i < (quick ? 5 : 15); i++) {
    await runtime.runPromise(host.unload(plugin))
    const t = performance.now()
    await call("noop", "")
    colds.push(performance.now() - t)
  }
  const cold = median(colds)
  say(`cold start (cached compiled module): ${cold.toFixed(1)} ms median of ${colds.length} (worker start + instantiate + call)`)

  // Throughput with the pool: 16 calls in flight.
  const throughput = async (poolSize: number) => {
    const rt = ManagedRuntime.make(Host.layer({ poolSize }).pipe(Layer.provide(KvStore.layerMemory()), Layer.merge(quiet)))
    const h = await rt.runPromise(Host.SkillHost)
    const p = await rt.runPromise(h.load(Host.fromBytes(bytes, { name: `pool${poolSize}` })))
    await rt.runPromise(h.warm(p, poolSize))
    const total = quick ? 2000 : 8000
    let next = 0
    const t = performance.now()
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next++ < total) await rt.runPromise(h.call(p, "len", kb1))
    }))
    const rate = total / ((performance.now() - t) / 1000)
    await rt.dispose()
    return rate
  }
  const pool1 = await throughput(1)
  const poolN = await throughput(cores)
  say(`pool throughput (1 KB calls, 16 in flight): pool of 1 ${pool1.toFixed(0)} calls/s, pool of ${cores} ${poolN.toFixed(0)} calls/s`)

  // First-party TypeScript skills through the same invocation path.
  const skills = await runtime.runPromise(Skills.Skills)
  const calc = median(await timeCalls(N, () => runtime.runPromise(skills.invoke({ app: "math", skill: "calculate", input: { expression: "(17.5 * 3 + 2^10) / 7" }, userId: "bench" }))))
  const text = "Troupe runs skills in a sandbox. Each skill is a WebAssembly plugin with limits. The host caps memory and time. ".repeat(20)
  const summarize = median(await timeCalls(quick ? 50 : 200, () => runtime.runPromise(skills.invoke({ app: "text", skill: "summarize", input: { text }, userId: "bench" })), 10))
  say(`first-party skills via Skills.invoke: math.calculate ${calc.toFixed(3)} ms, text.summarize (2.2 KB) ${summarize.toFixed(3)} ms (median)`)

  // Event-loop stall of this thread while every instance burns CPU until it is killed at its
  // timeout (and replaced), with warm calls going on; the same window without plugins running is
  // the baseline (on a loaded machine the OS alone delays timers).
  const burner = await runtime.runPromise(host.load(Host.fromBytes(bytes, { name: "burner", limits: { timeoutMs: 1000 } })))
  const windowMs = quick ? 2500 : 5000
  const idle = await stalls(() => new Promise((resolve) => setTimeout(resolve, windowMs)))
  const burning = await stalls(async () => {
    const until = performance.now() + windowMs
    const burners = Array.from({ length: cores }, async () => {
      while (performance.now() < until) await runtime.runPromise(Effect.either(host.call(burner, "burn", "")))
    })
    while (performance.now() < until) {
      await call("len", kb1)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await Promise.all(burners)
  })
  const stall = burning.worst
  say(
    `event-loop stall of the serving thread while ${cores} plugins burned CPU (killed at 1 s, restarted) for ${windowMs / 1000} s: worst ${burning.worst.toFixed(1)} ms, p99 ${
      burning.p99.toFixed(1)
    } ms (same window idle: worst ${idle.worst.toFixed(1)} ms, p99 ${idle.p99.toFixed(1)} ms)`
  )

  const stats = await runtime.runPromise(host.stats)
  await runtime.dispose()
  say(JSON.stringify({
    benchmark: "skills",
    cores,
    load: NodeOs.loadavg().map((l) => round(l, 2)),
    raw_sdk_call_ms: round(rawNoop),
    warm_call_ms: round(oursNoop),
    warm_call_ratio_to_sdk: round(oursNoop / rawNoop, 2),
    warm_call_run_promise_ms: round(noop.promise),
    raw_sdk_cpu_per_call_ms: round(rawCpu),
    warm_call_cpu_per_call_ms: round(oursCpu),
    ratio_run_promise: round(noop.promise / rawNoop, 2),
    raw_sdk_1kb_ms: round(raw1k),
    warm_call_1kb_ms: round(ours1k),
    ratio_1kb: round(ours1k / raw1k, 2),
    raw_sdk_100kb_ms: round(raw100k),
    warm_call_100kb_ms: round(ours100k),
    ratio_100kb: round(ours100k / raw100k, 2),
    cold_start_ms: round(cold, 1),
    pool_1_calls_per_s: Math.round(pool1),
    pool_cores_calls_per_s: Math.round(poolN),
    ts_skill_calculate_ms: round(calc),
    ts_skill_summarize_ms: round(summarize),
    instances_started: stats.instancesStarted,
    event_loop_stall_p99_ms: round(burning.p99, 1),
    idle_event_loop_stall_ms: round(idle.worst, 1),
    max_event_loop_stall_ms: round(stall, 1)
  }))
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench:skills failed: ${e instanceof Error ? e.stack : String(e)}\n`)
    process.exit(1)
  }
)
