/**
 * The conformance set: the 31 third-party Extism plugins of `../shared/fixtures/extism/`, each run
 * through our host's library API (not the raw SDK), configured as its case says. Negative cases
 * must be refused with a clear, typed error.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { safeFetch } from "../../runtime/SafeFetch.ts"
import * as Host from "./Host.ts"
import type * as HostFunctions from "./HostFunctions.ts"
import * as KvStore from "./KvStore.ts"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"

const FIXTURES = NodePath.join(fixturesDir(), "extism")

interface Case {
  readonly id: string
  readonly file: string
  readonly function: string
  readonly input: string
  readonly link?: ReadonlyArray<{ readonly name: string; readonly file: string }>
  readonly options: {
    readonly useWasi?: boolean
    readonly runInWorker?: boolean
    readonly timeoutMs?: number
    readonly config?: Record<string, string>
    readonly allowedHosts?: ReadonlyArray<string>
    readonly memory?: { readonly maxPages?: number }
    readonly allowHttpResponseHeaders?: boolean
    readonly enableWasiOutput?: boolean
  }
  readonly hostFunctions?: Record<string, Record<string, string>>
  readonly mockHttp?: string
  readonly expect: {
    readonly output?: string
    readonly json?: unknown
    readonly jsonHasKey?: string
    readonly jsonPath?: string
    readonly equals?: unknown
    readonly outputNull?: boolean
    readonly outputFromMock?: boolean
    readonly hostSaw?: string
    readonly error?: boolean
    readonly errorContains?: string
  }
}

const cases: ReadonlyArray<Case> = JSON.parse(NodeFs.readFileSync(NodePath.join(FIXTURES, "cases.json"), "utf8"))

// The mock server the cases' HTTP goes to (the machine has no internet).
const server = NodeHttp.createServer((req, res) => {
  if (req.url?.startsWith("/page")) {
    res.setHeader("content-type", "text/html")
    res.end("<html><head><style>x{}</style><script>alert(1)</script></head><body><h1>Skill Test</h1><p>Hello <b>world</b>.</p></body></html>")
    return
  }
  res.setHeader("content-type", "application/json")
  res.end(JSON.stringify({ userId: 1, id: 1, title: "delectus aut autem", completed: false }))
})
let port = 0

/**
 * Plugin HTTP: jsonplaceholder.typicode.com (the `go-http-*` cases, which the fixture's README
 * runs against a mock) is answered by the local server after the same host policy check the
 * real egress applies; everything else goes through `safeFetch` with the local server on the
 * operator's private-host allowlist.
 */
const egress: HostFunctions.Egress = (url, options) => {
  const parsed = new URL(url)
  if (parsed.hostname !== "jsonplaceholder.typicode.com") return safeFetch(url, options)
  if (options.hostAllowed && !options.hostAllowed(parsed.hostname)) {
    return Effect.fail({ reason: "host_not_allowed", url, message: `host ${parsed.hostname} is not allowed` })
  }
  return Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${parsed.pathname}${parsed.search}`, { method: options.method ?? "GET" })
    return { url, status: response.status, headers: response.headers, body: new Uint8Array(await response.arrayBuffer()) }
  })
}

let runtime: ManagedRuntime.ManagedRuntime<Host.SkillHost, never>

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  port = (server.address() as AddressInfo).port
  runtime = ManagedRuntime.make(
    Host.layer({ egress, allowedPrivateHosts: [`127.0.0.1:${port}`] }).pipe(Layer.provide(KvStore.layerMemory()))
  )
})

afterAll(async () => {
  await runtime.dispose()
  await new Promise((resolve) => server.close(resolve))
})

let saw: string | null = null

/** The host functions the cases name, implemented as their descriptions say. */
const hostFunctionsOf = (c: Case): HostFunctions.CustomFunctions | undefined => {
  if (!c.hostFunctions) return undefined
  switch (c.id) {
    case "go-host-mult":
      return { "extism:host/user": { mult: (_context, a, b) => BigInt(a ?? 0) * BigInt(b ?? 0) } }
    case "go-host-memory":
      return { host: { to_upper: (context, ptr) => context.store(context.read(BigInt(ptr ?? 0))!.text().toUpperCase()) } }
    case "host-hello-world":
      return {
        "extism:host/user": {
          hello_world: (context, ptr) => {
            saw = context.read(BigInt(ptr ?? 0))!.text()
            return context.store("wow okay then")
          }
        }
      }
    default:
      throw new Error(`no host functions for ${c.id}`)
  }
}

const specOf = (c: Case): Host.PluginSpec => {
  const read = (file: string) => new Uint8Array(NodeFs.readFileSync(NodePath.join(FIXTURES, file)))
  const o = c.options
  return {
    name: c.id,
    modules: [...(c.link ?? []).map((l) => ({ name: l.name, bytes: read(l.file) })), { name: "main", bytes: read(c.file) }],
    wasi: o.useWasi ?? false,
    wasiOutput: o.enableWasiOutput ?? false,
    allowedHosts: o.allowedHosts ?? [],
    allowHttpResponseHeaders: o.allowHttpResponseHeaders ?? false,
    config: o.config ?? {},
    functions: hostFunctionsOf(c),
    exports: [c.function],
    limits: {
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : { timeoutMs: 8_000 }),
      ...(o.memory?.maxPages !== undefined ? { bufferBytes: o.memory.maxPages * 65536 } : {})
    }
  }
}

type Result =
  | { readonly ok: true; readonly output: string | null }
  | { readonly ok: false; readonly tag: string; readonly message: string }

const run = (c: Case): Promise<Result> =>
  runtime.runPromise(
    Effect.gen(function*() {
      const host = yield* Host.SkillHost
      const result = yield* Effect.either(
        Effect.flatMap(host.load(specOf(c)), (plugin) => host.call(plugin, c.function, c.input.replaceAll("PORT", String(port))))
      )
      return Either.match(result, {
        onLeft: (e): Result => ({ ok: false, tag: e._tag, message: e.message }),
        onRight: (r): Result => ({ ok: true, output: r.output === null ? null : new TextDecoder().decode(r.output) })
      })
    })
  )

const at = (value: unknown, path: string): unknown =>
  path.split(/[.[\]]/).filter(Boolean).reduce<unknown>((a, k) => (a as Record<string, unknown> | undefined)?.[k], value)

/** The typed error each negative case must be refused with. */
const expectedTag: Record<string, string> = {
  "go-hello-nowasi": "AdmissionError",
  "go-fail": "SkillFailed",
  "go-http-denied": "SkillEgressDenied",
  "go-busy-timeout": "SkillTimeout",
  "rust-loop-timeout": "SkillTimeout",
  "raw-loop-timeout": "SkillTimeout",
  "unreachable-trap": "SkillFailed",
  "mem-deny": "SkillMemoryExceeded",
  "go-std-command": "AdmissionError",
  "legacy-abi": "AdmissionError"
}

describe("third-party Extism plugins through our host", () => {
  it("has all 31 cases", () => {
    expect(cases).toHaveLength(31)
  })

  for (const c of cases) {
    it(`${c.id}: ${c.file} ${c.function}`, async () => {
      saw = null
      const result = await run(c)
      const e = c.expect
      if (e.errorContains !== undefined || e.error) {
        expect(result.ok, `expected an error, got ${JSON.stringify(result)}`).toBe(false)
        if (result.ok) return
        if (e.errorContains !== undefined) expect(result.message).toContain(e.errorContains)
        expect(result.tag).toBe(expectedTag[c.id])
        return
      }
      expect(result, JSON.stringify(result)).toMatchObject({ ok: true })
      if (!result.ok) return
      const out = result.output
      if (e.output !== undefined) expect(out).toBe(e.output)
      else if (e.json !== undefined) expect(JSON.parse(out!)).toEqual(e.json)
      else if (e.jsonHasKey !== undefined) expect(Object.keys(JSON.parse(out!))).toContain(e.jsonHasKey)
      else if (e.jsonPath !== undefined) expect(at(JSON.parse(out!), e.jsonPath)).toBe(e.equals)
      else if (e.outputNull) expect(out).toBeNull()
      else if (e.outputFromMock) expect(JSON.parse(out!).title).toBe("delectus aut autem")
      else throw new Error(`case ${c.id} has no expectation this test understands`)
      if (e.hostSaw !== undefined) expect(saw).toBe(e.hostSaw)
    })
  }

  it("explains why the negative cases are refused", async () => {
    const byId = (id: string) => cases.find((c) => c.id === id)!
    const legacy = await run(byId("legacy-abi"))
    expect(legacy).toMatchObject({ ok: false, tag: "AdmissionError" })
    if (!legacy.ok) expect(legacy.message).toMatch(/pre-1\.0 Extism ABI.*env::extism_input_length/)
    const command = await run(byId("go-std-command"))
    if (!command.ok) expect(command.message).toMatch(/WASI command module/)
    const noWasi = await run(byId("go-hello-nowasi"))
    if (!noWasi.ok) expect(noWasi.message).toMatch(/imports WASI .* but WASI is not enabled/)
  })
})
