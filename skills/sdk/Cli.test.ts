/**
 * `troupe skill new|build|test|run` as an app author uses them. Most run in-process (the same
 * command the binary runs); one goes through the real `bin/troupe.mjs`.
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as NodeChild from "node:child_process"
import * as NodeFs from "node:fs/promises"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import * as SkillCli from "./Cli.ts"
import * as Project from "./Project.ts"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"

const ROOT = NodePath.resolve(import.meta.dirname, "../..")
const FIXTURES = NodePath.join(fixturesDir(), "extism")

const cli = Command.run(Command.make("troupe").pipe(Command.withSubcommands([SkillCli.skill])), { name: "troupe", version: "test" })

/** Run `troupe skill …` in-process; returns what it printed and its exit status. */
const troupe = async (...args: Array<string>) => {
  let stdout = ""
  let stderr = ""
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)
    return true
  })
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)
    return true
  })
  process.exitCode = undefined
  try {
    await Effect.runPromise(cli(["node", "troupe", "skill", ...args]).pipe(Effect.provide(NodeContext.layer)))
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
  const status = process.exitCode ?? 0
  process.exitCode = undefined
  return { stdout, stderr, status }
}

/** A module that imports `extism:host/user::launch_missiles` (which no host offers) and exports `go`. */
const missingImport = (() => {
  const name = (s: string) => [s.length, ...new TextEncoder().encode(s)]
  const imports = [0x01, ...name("extism:host/user"), ...name("launch_missiles"), 0x00, 0x00]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
    0x02, imports.length, ...imports,
    0x03, 0x02, 0x01, 0x00,
    0x07, 0x06, 0x01, 0x02, 0x67, 0x6f, 0x00, 0x01,
    0x0a, 0x06, 0x01, 0x04, 0x00, 0x10, 0x00, 0x0b
  ])
})()

const server = NodeHttp.createServer((_req, res) => {
  res.setHeader("content-type", "text/html")
  res.end("<html><body><h1>Mock page</h1></body></html>")
})
let port = 0
let work: string

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  port = (server.address() as AddressInfo).port
  work = await NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "troupe-cli-"))
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  await NodeFs.rm(work, { recursive: true, force: true })
})

describe("troupe skill", () => {
  it("new, build, test and run a fresh project", async () => {
    const dir = NodePath.join(work, "my-skill")
    const created = await troupe("new", dir)
    expect(created.status).toBe(0)
    expect(created.stdout).toContain("assembly/index.ts")
    expect(JSON.parse(await NodeFs.readFile(NodePath.join(dir, "manifest.json"), "utf8"))).toMatchObject({ id: "my-skill", name: "My Skill" })
    expect((await troupe("new", dir)).stderr).toContain("is not empty")
    // the project gets its own copy of the SDK's one source, and imports that copy
    expect(await NodeFs.readFile(NodePath.join(dir, "assembly", "troupe.ts"), "utf8")).toBe(await NodeFs.readFile(Project.SDK_SOURCE, "utf8"))
    expect(await NodeFs.readFile(NodePath.join(dir, "assembly", "index.ts"), "utf8")).toContain(`from "./troupe"`)

    expect(created.stdout).toMatch(/vendor\/troupe-skill-[\d.]+\.tgz/)
    const built = await troupe("build", dir)
    expect(built.stderr).toBe("")
    expect(built.stdout).toMatch(/^Built .*my-skill\.wasm .* manifest ok: my-skill 0\.1\.0, skills hello/)

    // test and run reuse the module built above (nothing changed)
    const tested = await troupe("test", dir)
    expect(tested.stdout).toContain("2 passed, 0 failed")
    expect(tested.status).toBe(0)

    const ran = await troupe("run", dir, "hello", "{\"name\":\"Zoë 👋\"}")
    expect(ran.stdout).toBe("{\"greeting\":\"Hello, Zoë 👋!\"}\n")
    expect(ran.status).toBe(0)

    const tests = JSON.parse(await NodeFs.readFile(NodePath.join(dir, "tests.json"), "utf8"))
    tests[0].expect.output.greeting = "Bonjour"
    await NodeFs.writeFile(NodePath.join(dir, "tests.json"), JSON.stringify(tests))
    const failing = await troupe("test", dir)
    expect(failing.stdout).toContain("✗ greets by name")
    expect(failing.stdout).toContain("1 passed, 1 failed")
    expect(failing.status).toBe(1)
    expect((await troupe("build", dir)).stdout).toMatch(/^Up to date /)
  }, 240_000)

  it("run: the host's limits and typed errors, with a non-zero exit", async () => {
    const timeout = await troupe("run", NodePath.join(FIXTURES, "loop-forever.wasm"), "loop", "--timeout-ms", "200")
    expect(timeout.stderr).toContain("troupe: skill_timeout: loop-forever.wasm.loop did not finish within 200 ms")
    expect(timeout.status).toBe(1)
    const noWasi = await troupe("run", NodePath.join(FIXTURES, "hello-from-go.wasm"), "hello", "Hi!")
    expect(noWasi.stderr).toContain("troupe: admission_rejected:")
    expect(noWasi.stderr).toContain("WASI is not enabled")
    const go = await troupe("run", NodePath.join(FIXTURES, "hello-from-go.wasm"), "hello", "Hi!", "--wasi")
    expect(go.stdout).toBe("Hi!\nHello from Go!\n")
    const config = await troupe("run", NodePath.join(FIXTURES, "config.wasm"), "run_test", "--wasi", "--config", "thing=from the CLI")
    expect(config.stdout).toBe("{\"config\": \"from the CLI\"}\n")
    const memory = await troupe("run", NodePath.join(FIXTURES, "count_vowels.wasm"), "count_vowels", "aeiou", "--memory-mb", "1")
    expect(memory.stderr).toContain("troupe: admission_rejected:")
    expect(memory.stderr).toMatch(/needs \d+ pages .* the limit is 16 pages/)
  })

  it("run: private hosts only through --allow-private-host", async () => {
    const input = JSON.stringify({ params: { name: "fetch", arguments: { url: `http://127.0.0.1:${port}/page` } } })
    const args = ["run", NodePath.join(FIXTURES, "mcp-fetch-servlet.wasm"), "call", input, "--wasi", "--allow-host", "127.0.0.1"]
    const denied = await troupe(...args)
    expect(denied.stderr).toContain("troupe: skill_egress_denied:")
    expect(denied.status).toBe(1)
    const allowed = await troupe(...args, "--allow-private-host", `127.0.0.1:${port}`)
    expect(allowed.status).toBe(0)
    expect(JSON.parse(allowed.stdout).content[0].text).toContain("# Mock page")
  })

  it("the real binary refuses a plugin importing host functions we do not offer, naming them", async () => {
    const file = NodePath.join(work, "missing.wasm")
    await NodeFs.writeFile(file, missingImport)
    const result = NodeChild.spawnSync(process.execPath, [NodePath.join(ROOT, "bin/troupe.mjs"), "skill", "run", file, "go"], {
      cwd: work,
      encoding: "utf8",
      timeout: 120_000
    })
    expect(result.status).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("troupe: admission_rejected: plugin missing.wasm was refused: imports host functions this host does not provide: extism:host/user::launch_missiles")
  })
})
