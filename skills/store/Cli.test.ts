/**
 * `troupe skill keygen` and `troupe skill publish` (through the server, and straight to a registry),
 * `troupe store ls|show` and `troupe admin apps ls|trust|install|upgrade|approve|uninstall` against a
 * running server, with the API key in `TROUPE_API_KEY`: an author's signed app is listed and
 * shown, an admin's `apps:admin` key installs it, an upgrade asking for a new host waits with its
 * diff until approved, uninstall removes it; a key without the scope, or a non-admin's, is
 * refused with the server's code and exit status 1. One call goes through the real binary.
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as NodeChild from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, expect, it, vi } from "vitest"
import { onboard } from "../../gateway/testing/flows.ts"
import { initialInvite, request, startServer, type TestServer } from "../../gateway/testing/server.ts"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import * as SkillCli from "../sdk/Cli.ts"
import * as ArtifactStore from "./ArtifactStore.ts"
import * as Client from "./Client.ts"
import * as StoreCli from "./Cli.ts"
import * as Pull from "./Pull.ts"
import * as Signing from "./Signing.ts"
import { startRegistry } from "./testing/registry.ts"

const ROOT = NodePath.resolve(import.meta.dirname, "../..")
const wasm = new Uint8Array(NodeFs.readFileSync(NodePath.join(fixturesDir(), "extism", "hello-from-assemblyscript.wasm")))
const manifest = (version: string, allowedHosts: Array<string> = []) => ({
  id: "hello",
  name: "Hello",
  version,
  description: "Greets whoever asks, from AssemblyScript",
  publisher: "Ada",
  abi: "extism-v1",
  permissions: { allowedHosts, wasi: false, hostFunctions: [] },
  skills: [{ name: "hello", description: "Says hello", input: { type: "string" }, output: { type: "string" }, pricing: { model: "fixed", credits: 1 }, sideEffects: "read" }]
})
const keys = Signing.generate()

const cli = Command.run(
  Command.make("troupe").pipe(Command.withSubcommands([SkillCli.skill, StoreCli.store, Command.make("admin").pipe(Command.withSubcommands([StoreCli.adminApps]))])),
  { name: "troupe", version: "test" }
)

/** Run `troupe …` in-process with `TROUPE_API_KEY=key` against the test server; what it printed and its exit status. */
const troupe = (key: string, ...args: Array<string>) => run(key, [...args, "--server", s.url])

/** Run `troupe <args>` in-process with `TROUPE_API_KEY=key`. */
const run = async (key: string, args: Array<string>) => {
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
  const saved = process.env.TROUPE_API_KEY
  process.env.TROUPE_API_KEY = key
  try {
    await Effect.runPromise(cli(["node", "troupe", ...args]).pipe(Effect.provide(NodeContext.layer)))
  } finally {
    out.mockRestore()
    err.mockRestore()
    if (saved === undefined) delete process.env.TROUPE_API_KEY
    else process.env.TROUPE_API_KEY = saved
  }
  const status = process.exitCode ?? 0
  process.exitCode = undefined
  return { stdout, stderr, status }
}

let db: Awaited<ReturnType<typeof createTestDatabase>>
let s: TestServer
let adminKey: string
let readKey: string
let authorKey: string

beforeAll(async () => {
  db = await createTestDatabase("storecli")
  s = await startServer({ databaseUrl: db.url })
  const admin = (await onboard(s, "root", initialInvite(s.dataDir))).access
  const key = async (token: string, scopes: Array<string>) => {
    const created = await request(s, "POST", "/v1/api_keys", { token, body: { name: scopes.join(" "), scopes } })
    expect(created.status, JSON.stringify(created.body)).toBe(201)
    return created.body.key as string
  }
  adminKey = await key(admin, ["apps:admin"])
  readKey = await key(admin, ["read"])
  const invite = await request(s, "POST", "/v1/admin/invites", { token: admin, body: { uses: 1 } })
  const author = await onboard(s, "author", invite.body.code)
  expect((await request(s, "PUT", `/v1/admin/users/${author.userId}/publisher`, { token: admin })).status).toBe(200)
  authorKey = await key(author.access, ["publish", "apps:admin"])
  const privateKey = Either.getOrThrow(Signing.readPrivateKey(keys.privateKeyPem))
  for (const [version, hosts] of [["1.0.0", []], ["1.1.0", ["api.example.com"]]] as const) {
    await Effect.runPromise(Client.publish({ url: s.url, token: authorKey }, { manifest: manifest(version, [...hosts]), modules: [{ name: "main", bytes: wasm }], privateKey }))
  }
}, 120_000)

afterAll(async () => {
  await s?.close()
  await db?.drop()
})

it("store ls and show; admin apps install, upgrade (pending with its diff), approve, ls, uninstall", async () => {
  const listed = await troupe(readKey, "store", "ls")
  expect(listed.status, listed.stderr).toBe(0)
  expect(listed.stdout).toMatch(/^hello\s+1\.1\.0\s+-\s+Hello$/m)
  const shown = await troupe(readKey, "store", "show", "hello")
  expect(shown.stdout).toContain("Hello (hello)")
  expect(shown.stdout).toMatch(/^1\.0\.0 {2}sha256:[0-9a-f]{64} {2}signed by ed25519:.* \(not trusted\)$/m)
  expect(shown.stdout).toContain("hello.hello — 1 credit")

  const untrusted = await troupe(adminKey, "admin", "apps", "install", "hello", "1.0.0")
  expect(untrusted.stderr).toContain("troupe: publisher_untrusted:")
  const trusted = await troupe(adminKey, "admin", "apps", "trust", keys.publicKey, "--name", "Ada")
  expect(trusted.stdout).toContain(`Trusted ${keys.publicKey} (Ada)`)
  const installed = await troupe(adminKey, "admin", "apps", "install", "hello", "1.0.0")
  expect(installed.status, installed.stderr).toBe(0)
  expect(installed.stdout).toMatch(/^hello 1\.0\.0 installed \(sha256:/)
  expect((await request(s, "POST", "/v1/apps/hello/skills/hello", { token: adminKey, body: { input: "Hi!" } })).status).toBe(403)

  const upgrade = await troupe(adminKey, "admin", "apps", "upgrade", "hello", "1.1.0")
  expect(upgrade.status, upgrade.stderr).toBe(0)
  expect(upgrade.stdout).toContain("hello 1.1.0 asks for more than 1.0.0; it waits for approval")
  expect(upgrade.stdout).toContain("+ permissions.allowedHosts: [] → [\"api.example.com\"]")
  expect((await troupe(adminKey, "admin", "apps", "ls")).stdout).toContain("hello 1.0.0 installed")
  expect((await troupe(adminKey, "admin", "apps", "ls")).stdout).toContain("upgrade to 1.1.0 waits for approval")
  const approved = await troupe(adminKey, "admin", "apps", "approve", "hello", "1.1.0")
  expect(approved.stdout).toMatch(/^Approved: hello 1\.1\.0 installed/)
  const json = await troupe(adminKey, "store", "ls", "--json")
  expect(JSON.parse(json.stdout).apps[0]).toMatchObject({ id: "hello", installed_version: "1.1.0" })

  const removed = await troupe(adminKey, "admin", "apps", "uninstall", "hello")
  expect(removed.status).toBe(0)
  expect((await troupe(adminKey, "admin", "apps", "ls")).stdout).toContain("No apps installed.")
})

it("refuses a key without apps:admin, a non-admin's key and no key, with the server's code and exit status 1", async () => {
  const scope = await troupe(readKey, "admin", "apps", "install", "hello", "1.0.0")
  expect(scope.status).toBe(1)
  expect(scope.stderr).toContain("troupe: insufficient_scope:")
  const notAdmin = await troupe(authorKey, "admin", "apps", "install", "hello", "1.0.0")
  expect(notAdmin.stderr).toContain("troupe: admin_only:")
  const missing = await troupe(adminKey, "admin", "apps", "install", "nope", "1.0.0")
  expect(missing.status).toBe(1)
  expect(missing.stderr).toMatch(/^troupe: \w+: /)
  const none = await troupe("", "store", "ls")
  expect(none.stderr).toContain("troupe: no_api_key:")
})

it("skill keygen writes a 0600 key and prints its public key; skill publish signs and uploads through the server, or pushes to a registry", async () => {
  const work = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-publish-"))
  const registry = await startRegistry()
  try {
    const keyFile = NodePath.join(work, "author.key")
    const keygen = await run("", ["skill", "keygen", "--out", keyFile])
    expect(keygen.status, keygen.stderr).toBe(0)
    expect(NodeFs.statSync(keyFile).mode & 0o777).toBe(0o600)
    const publicKey = keygen.stdout.trim().split("\n").at(-1)!
    expect(publicKey).toMatch(/^ed25519:[A-Za-z0-9+/]{43}=$/)
    expect(Buffer.from(publicKey.slice("ed25519:".length), "base64").byteLength).toBe(32)
    expect((await run("", ["skill", "keygen", "--out", keyFile])).stderr).toContain("troupe: key_exists:")

    // a new project (`skill new`): publish builds it, signs it with the key and uploads it with a progress bar
    const dir = NodePath.join(work, "greet-cli")
    expect((await run("", ["skill", "new", dir])).status).toBe(0)
    const published = await run(authorKey, ["skill", "publish", dir, "--key", keyFile, "--server", s.url])
    expect(published.status, published.stderr).toBe(0)
    expect(published.stdout).toMatch(/^Published greet-cli 0\.1\.0 \(sha256:[0-9a-f]{64}\)$/m)
    expect(published.stderr).toMatch(/\[#{30}\] .* \/ /)
    const shown = await troupe(readKey, "store", "show", "greet-cli")
    expect(shown.stdout).toContain(`signed by ${publicKey} (not trusted)`)
    expect((await run("", ["skill", "publish", dir, "--key", keyFile, "--server", s.url])).stderr).toContain("TROUPE_API_KEY")

    // --registry: pushed straight to the registry, signed; what a runner pulls verifies against the key
    const pushed = await run("", ["skill", "publish", dir, "--key", keyFile, "--registry", registry.url])
    expect(pushed.status, pushed.stderr).toBe(0)
    const digest = /\((sha256:[0-9a-f]{64}), signed by (ed25519:\S+)\)/.exec(pushed.stdout)
    expect(digest?.[2]).toBe(publicKey)
    const verified = await Effect.runPromise(Pull.pull(ArtifactStore.makeRegistry({ url: registry.url }), "troupe/greet-cli", digest![1]!, { trusted: [publicKey], allowUnsigned: false }))
    expect(verified.manifest.id).toBe("greet-cli")
    expect(verified.publicKey).toBe(publicKey)
  } finally {
    await registry.stop()
    NodeFs.rmSync(work, { recursive: true, force: true })
  }
}, 120_000)

it("the real binary: troupe store ls", async () => {
  // not spawnSync: the server answering it runs in this process
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    NodeChild.execFile(process.execPath, [NodePath.join(ROOT, "bin/troupe.mjs"), "store", "ls", "--server", s.url], {
      env: { ...process.env, TROUPE_API_KEY: readKey },
      encoding: "utf8",
      timeout: 120_000
    }, (error, stdout, stderr) => resolve({ status: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }))
  })
  expect(r.status, r.stderr).toBe(0)
  expect(r.stdout).toMatch(/^hello\s+1\.1\.0/m)
}, 150_000)
