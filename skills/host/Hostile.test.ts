/**
 * Hostile plugins of our own (AssemblyScript, built here from source; one hand-assembled module):
 * each is contained with its typed error, this process stays alive, and the next call to the same
 * plugin works.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as NodeFs from "node:fs/promises"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Project from "../sdk/Project.ts"
import * as Host from "./Host.ts"
import * as KvStore from "./KvStore.ts"

const HOSTILE = `
import { http, inputText, log, outputText } from "./troupe"

@external("extism:host/env", "alloc") declare function alloc(n: u64): u64
@external("extism:host/env", "output_set") declare function output_set(offset: u64, n: u64): void
@external("extism:host/env", "length") declare function block_length(offset: u64): u64
@external("extism:host/env", "load_u8") declare function load_u8(offset: u64): u8

let sink: i32 = 0
const kept = new Array<Uint8Array>()

export function echo(): i32 { outputText(inputText()); return 0 }
export function spin(): i32 { let i = 0; while (i >= 0) { i = (i + 1) & 0x3fffffff; sink = i } return 0 }
export function membomb(): i32 {
  while (true) { const b = new Uint8Array(1 << 20); b[0] = 1; kept.push(b) }
  return 0
}
export function outbomb(): i32 { const n = <u64>parseInt(inputText()); const at = alloc(n); output_set(at, n); return 0 }
export function fetch(): i32 { const r = http("GET", inputText()); outputText(r.status.toString() + " " + r.body); return 0 }
export function fetch_then_spin(): i32 {
  http("GET", inputText())
  let i = 0; while (i >= 0) { i = (i + 1) & 0x3fffffff; sink = i }
  return 0
}
export function trap(): i32 { unreachable(); return 0 }
export function chatty(): i32 { for (let i = 0; i < 500; i++) log("line " + i.toString()); outputText("said a lot"); return 0 }
/** Reads every Extism block it can address: what earlier calls left behind. */
export function peek(): i32 {
  let seen = ""
  for (let i: u64 = 1; i < 512; i++) {
    const at = i << 48
    const n = block_length(at)
    if (n == 0 || n > 4096) continue
    const bytes = new Uint8Array(<i32>n)
    for (let j: u64 = 0; j < n; j++) bytes[<i32>j] = load_u8(at + j)
    seen += String.UTF8.decode(bytes.buffer) + "|"
  }
  outputText(seen)
  return 0
}
export function abort_me(): i32 { assert(false, "the plugin gave up"); return 0 }
function recurse(n: i32): i32 { return n == 0 ? 0 : recurse(n + 1) + 1 }
export function overflow(): i32 { sink = recurse(1); return 0 }
`

const MISSING_IMPORT = `
import "./troupe"
@external("extism:host/user", "launch_missiles") declare function launch_missiles(): void
@external("env", "exfiltrate") declare function exfiltrate(): void
export function go(): i32 { launch_missiles(); exfiltrate(); return 0 }
`

const THROWER = `
import { outputText } from "./troupe"
@external("extism:host/user", "explode") declare function explode(x: u64): u64
export function go(): i32 { outputText("got " + explode(7).toString()); return 0 }
`

/** A module whose start function traps: it fails while being instantiated in the worker. */
const START_TRAP = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: () -> ()
  0x03, 0x02, 0x01, 0x00, // func 0: type 0
  0x07, 0x07, 0x01, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00, // export "run" = func 0
  0x08, 0x01, 0x00, // start = func 0
  0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b // body: unreachable
])

const server = NodeHttp.createServer((req, res) => {
  if (req.url === "/slow") setTimeout(() => res.end("late"), 8000)
  else res.end("private data")
})
let port = 0
let runtime: ManagedRuntime.ManagedRuntime<Host.SkillHost, never>
let hostile: Uint8Array
let missing: Uint8Array
let thrower: Uint8Array
let dir: string

const build = (name: string, source: string) =>
  Effect.runPromise(
    Effect.flatMap(
      Effect.promise(() => NodeFs.writeFile(NodePath.join(dir, "assembly", `${name}.ts`), source)),
      () => Project.compileSource(dir, `assembly/${name}.ts`, `build/${name}.wasm`, { optimize: "debug" })
    )
  )

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  port = (server.address() as AddressInfo).port
  dir = await NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "troupe-hostile-"))
  await NodeFs.mkdir(NodePath.join(dir, "assembly"))
  await NodeFs.copyFile(Project.SDK_SOURCE, NodePath.join(dir, "assembly", "troupe.ts"))
  hostile = await build("hostile", HOSTILE)
  missing = await build("missing", MISSING_IMPORT)
  thrower = await build("thrower", THROWER)
  runtime = ManagedRuntime.make(Host.layer({ poolSize: 2 }).pipe(Layer.provide(KvStore.layerMemory())))
})

afterAll(async () => {
  await runtime?.dispose()
  await new Promise((resolve) => server.close(resolve))
  await NodeFs.rm(dir, { recursive: true, force: true })
})

const limits: Partial<Host.HostLimits> = {
  memoryBytes: 16 * 1024 * 1024,
  bufferBytes: 16 * 1024 * 1024,
  timeoutMs: 500,
  maxOutputBytes: 1024 * 1024
}

const load = (spec: Host.PluginSpec) => runtime.runPromise(Effect.flatMap(Host.SkillHost, (host) => host.load(spec)))

const call = (plugin: Host.LoadedPlugin, exportName: string, input = "", user?: string) =>
  runtime.runPromise(
    Effect.flatMap(Host.SkillHost, (host) =>
      Effect.either(host.call(plugin, exportName, input, user ? { scope: { app: "hostile", installId: "i", userId: user } } : {})).pipe(
        Effect.map(Either.map((r) => (r.output === null ? null : new TextDecoder().decode(r.output))))
      ))
  )

const failure = async (plugin: Host.LoadedPlugin, exportName: string, input = "") => {
  const result = await call(plugin, exportName, input)
  if (Either.isRight(result)) throw new Error(`expected ${exportName} to fail, it returned ${result.right}`)
  return result.left
}

/** After every hostile call: the same plugin still answers. */
const stillWorks = async (plugin: Host.LoadedPlugin) => {
  expect(await call(plugin, "echo", "still here ✓")).toEqual(Either.right("still here ✓"))
}

describe("hostile plugins are contained", () => {
  let plugin: Host.LoadedPlugin

  beforeAll(async () => {
    plugin = await load(Host.fromBytes(hostile, { name: "hostile", allowedHosts: ["api.example.com"], limits }))
  })

  it("an infinite loop is stopped at the timeout", async () => {
    const e = await failure(plugin, "spin")
    expect(e).toMatchObject({ _tag: "SkillTimeout", code: "skill_timeout", timeoutMs: 500 })
    await stillWorks(plugin)
  })

  it("a memory bomb hits the memory cap", async () => {
    const e = await failure(plugin, "membomb")
    expect(e).toMatchObject({ _tag: "SkillMemoryExceeded", code: "skill_memory_exceeded", limitBytes: 16 * 1024 * 1024 })
    await stillWorks(plugin)
  })

  it("an output bomb is refused: over the output cap, or over the buffer cap", async () => {
    expect(await failure(plugin, "outbomb", String(4 * 1024 * 1024))).toMatchObject({ _tag: "SkillFailed", reason: "output_too_large" })
    expect(await failure(plugin, "outbomb", String(32 * 1024 * 1024))).toMatchObject({ _tag: "SkillMemoryExceeded" })
    await stillWorks(plugin)
  })

  it("a request to a host outside allowedHosts is denied", async () => {
    const e = await failure(plugin, "fetch", "https://example.org/steal")
    expect(e).toMatchObject({ _tag: "SkillEgressDenied", code: "skill_egress_denied", url: "https://example.org/steal", reason: "host_not_allowed" })
    await stillWorks(plugin)
  })

  it("127.0.0.1 is denied even with allowedHosts [\"*\"]", async () => {
    const open = await load(Host.fromBytes(hostile, { name: "open", allowedHosts: ["*"], limits }))
    const e = await failure(open, "fetch", `http://127.0.0.1:${port}/`)
    expect(e).toMatchObject({ _tag: "SkillEgressDenied", reason: "blocked_address" })
    expect(e.message).toContain("is not allowed")
    const mapped = await failure(open, "fetch", `http://[::ffff:127.0.0.1]:${port}/`)
    expect(mapped).toMatchObject({ _tag: "SkillEgressDenied" })
    await stillWorks(open)
  })

  it("a plugin that times out during, or right after, an HTTP call leaves the host working", async () => {
    expect(await failure(plugin, "fetch_then_spin", "https://example.org/")).toMatchObject({ _tag: "SkillTimeout" })
    await stillWorks(plugin)
    const withMock = ManagedRuntime.make(Host.layer({ allowedPrivateHosts: [`127.0.0.1:${port}`] }).pipe(Layer.provide(KvStore.layerMemory())))
    try {
      const result = await withMock.runPromise(Effect.gen(function*() {
        const host = yield* Host.SkillHost
        // a roomier limit than the others: the first call must finish on a busy host (the whole suite on
        // two cores); /slow answers after 8 s, always too late
        const p = yield* host.load(Host.fromBytes(hostile, { name: "slow", allowedHosts: ["127.0.0.1"], limits: { ...limits, timeoutMs: 5_000 } }))
        const reached = yield* host.call(p, "fetch", `http://127.0.0.1:${port}/`)
        const slow = yield* Effect.flip(host.call(p, "fetch", `http://127.0.0.1:${port}/slow`))
        const after = yield* host.call(p, "echo", "after")
        return { reached: new TextDecoder().decode(reached.output!), slow, after: new TextDecoder().decode(after.output!) }
      }))
      expect(result.reached).toBe("200 private data")
      expect(result.slow).toMatchObject({ _tag: "SkillTimeout" })
      expect(result.after).toBe("after")
    } finally {
      await withMock.dispose()
    }
  })

  it("a trap, an abort and a stack overflow are reported as traps", async () => {
    expect(await failure(plugin, "trap")).toMatchObject({ _tag: "SkillFailed", reason: "trap", message: expect.stringContaining("unreachable") })
    const aborted = await failure(plugin, "abort_me")
    expect(aborted).toMatchObject({ _tag: "SkillFailed", reason: "trap" })
    expect(aborted.message).toContain("the plugin gave up")
    expect(await failure(plugin, "overflow")).toMatchObject({ _tag: "SkillFailed", reason: "trap" })
    await stillWorks(plugin)
  })

  it("a module importing host functions we do not offer is refused at admission, naming them", async () => {
    const e = await runtime.runPromise(Effect.flip(Effect.flatMap(Host.SkillHost, (host) => host.load(Host.fromBytes(missing, { name: "missing" })))))
    expect(e).toMatchObject({ _tag: "AdmissionError", code: "admission_rejected" })
    expect(e.message).toContain("extism:host/user::launch_missiles")
    expect(e.message).toContain("env::exfiltrate")
  })

  it("a module that traps while starting fails its call without taking the process down", async () => {
    const starter = await load(Host.fromBytes(START_TRAP, { name: "start-trap", limits }))
    const e = await failure(starter, "run")
    expect(e).toMatchObject({ _tag: "SkillFailed", reason: "crashed" })
    expect(e.message).toContain("unreachable")
    await stillWorks(plugin)
  })

  it("a host function that throws returns zero to the plugin instead of hanging it", async () => {
    const p = await load(Host.fromBytes(thrower, {
      name: "thrower",
      functions: { "extism:host/user": { explode: () => { throw new Error("kaboom") } } },
      limits
    }))
    expect(await call(p, "go")).toEqual(Either.right("got 0"))
    expect(await call(p, "go")).toEqual(Either.right("got 0"))
  })

  it("queues calls per instance: a burst of calls never uses more instances than the pool size", async () => {
    const stats = () => runtime.runPromise(Effect.flatMap(Host.SkillHost, (host) => host.stats))
    let largest = 0
    const results = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const r = await call(plugin, "echo", `call ${i}`)
      largest = Math.max(largest, (await stats()).largestPool)
      return r
    }))
    expect(results).toEqual(Array.from({ length: 12 }, (_, i) => Either.right(`call ${i}`)))
    expect(largest).toBeLessThanOrEqual(2)
    expect((await stats()).waiting).toBe(0)
  })

  it("a plugin cannot read what another user's call left in its buffers", async () => {
    const single = await load(Host.fromBytes(hostile, { name: "single", limits }))
    await runtime.runPromise(Effect.flatMap(Host.SkillHost, (host) => host.warm(single, 1)))
    expect(await call(single, "echo", "ada-secret-4711", "ada")).toEqual(Either.right("ada-secret-4711"))
    const otherView = await call(single, "peek", "", "bob")
    expect(Either.isRight(otherView)).toBe(true)
    expect(Either.getOrThrow(otherView)).not.toContain("ada-secret")
  })

  it("routes plugin logs into our logger, annotated and capped per call", async () => {
    const lines: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
    const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ annotations, message }) => {
      lines.push({ message, annotations: Object.fromEntries(annotations) })
    }))
    const logged = ManagedRuntime.make(Host.layer().pipe(Layer.provide(KvStore.layerMemory()), Layer.provide(capture)))
    try {
      const output = await logged.runPromise(Effect.gen(function*() {
        const host = yield* Host.SkillHost
        const p = yield* host.load(Host.fromBytes(hostile, { name: "chatty", limits: { ...limits, maxLogLines: 20 } }))
        return (yield* host.call(p, "chatty", "", { skill: "demo.chatty" })).output
      }))
      expect(new TextDecoder().decode(output!)).toBe("said a lot")
      await new Promise((resolve) => setTimeout(resolve, 50))
      const fromPlugin = lines.filter((l) => l.annotations["source"] === "plugin")
      expect(fromPlugin).toHaveLength(20)
      expect(fromPlugin[0]).toMatchObject({ annotations: { plugin: "chatty", skill: "demo.chatty" } })
      expect(String(fromPlugin[0]!.message)).toContain("line 0")
    } finally {
      await logged.dispose()
    }
  })

  it("refuses an input over the input cap before running anything", async () => {
    const small = await load(Host.fromBytes(hostile, { name: "small", limits: { ...limits, maxInputBytes: 10 } }))
    expect(await failure(small, "echo", "x".repeat(11))).toMatchObject({ _tag: "InvalidInput", code: "invalid_input" })
  })

  it("refuses a module whose initial memory exceeds the cap", async () => {
    // (memory 4) and nothing else
    const bytes = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x03, 0x01, 0x00, 0x04])
    const e = await runtime.runPromise(
      Effect.flip(Effect.flatMap(Host.SkillHost, (host) => host.load(Host.fromBytes(bytes, { name: "big", limits: { memoryBytes: 2 * 65536 } }))))
    )
    expect(e).toMatchObject({ _tag: "AdmissionError" })
    expect(e.message).toContain("needs 4 pages (256 KiB) of memory to start; the limit is 2 pages (128 KiB)")
  })
})
