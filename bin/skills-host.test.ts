/**
 * Where skills run, and with which settings: a `troupe runner` started with
 * `TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS=127.0.0.1:<A>` and a `troupe gateway` started without it,
 * on one Postgres database and one S3 bucket. A WASM plugin installed from the app store, called
 * through the gateway's `POST /v1/apps/{app}/skills/{skill}`, reaches the allowed private host and
 * is refused another private one (`skill_egress_denied`); so does the first-party `web.read`.
 * The gateway has no allowlist: a call that reaches A ran on the runner.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import S3rver from "s3rver"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { onboard } from "../gateway/testing/flows.ts"
import { request, type TestServer } from "../gateway/testing/server.ts"
import { randomMasterKey, startRunner } from "../runtime/testing/cluster.ts"
import { freePort, spawnTroupe, type Spawned, stop, waitFor } from "../runtime/testing/process.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import * as Project from "../skills/sdk/Project.ts"
import * as Client from "../skills/store/Client.ts"
import * as Signing from "../skills/store/Signing.ts"

const PROBE = `
import { http, inputText, outputText } from "./troupe"
/** GET the URL given as a JSON string; answer "<status> <body>". */
export function fetch(): i32 {
  const json = inputText()
  const r = http("GET", json.slice(1, json.length - 1))
  outputText(r.status.toString() + " " + r.body)
  return 0
}
`

const manifest = {
  id: "probe",
  name: "Probe",
  version: "1.0.0",
  description: "Fetches a URL (egress test)",
  publisher: "Troupe tests",
  abi: "extism-v1",
  permissions: { allowedHosts: ["127.0.0.1"], wasi: false, hostFunctions: [] },
  skills: [{ name: "fetch", description: "GET a URL", input: { type: "string" }, output: { type: "string" }, pricing: { model: "fixed", credits: 1 }, sideEffects: "read" }]
}

const dirs: Array<string> = []
const tempDir = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-skillhost-"))
  dirs.push(dir)
  return dir
}
const procs: Array<Spawned> = []
const servers: Array<NodeHttp.Server> = []
let s3: S3rver
let db: Awaited<ReturnType<typeof createTestDatabase>>
let gateway: TestServer
let wasm: Uint8Array

/** A private (loopback) web server answering a page that names it. */
const page = async (name: string): Promise<number> => {
  const server = NodeHttp.createServer((_req, res) => {
    res.setHeader("content-type", "text/html")
    res.end(`<html><head><title>${name}</title></head><body><main><p>reached ${name}</p></main></body></html>`)
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return (server.address() as AddressInfo).port
}
let allowed = 0
let other = 0

beforeAll(async () => {
  ;[allowed, other] = [await page("allowed"), await page("other")]
  const source = tempDir()
  NodeFs.mkdirSync(NodePath.join(source, "assembly"))
  NodeFs.copyFileSync(Project.SDK_SOURCE, NodePath.join(source, "assembly", "troupe.ts"))
  NodeFs.writeFileSync(NodePath.join(source, "assembly", "probe.ts"), PROBE)
  wasm = await Effect.runPromise(Project.compileSource(source, "assembly/probe.ts", "build/probe.wasm", { optimize: "debug" }))

  s3 = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: NodePath.join(tempDir(), "s3rver") })
  const s3Port = (await s3.run()).port
  const shared = {
    S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
    S3_BUCKET: "troupe-skillhost",
    S3_ACCESS_KEY_ID: "S3RVER",
    S3_SECRET_ACCESS_KEY: "S3RVER",
    TROUPE_STORE_POLL_INTERVAL: "200 millis"
  }
  db = await createTestDatabase("skillhost")
  const runner = await startRunner({
    databaseUrl: db.url,
    masterKey: randomMasterKey(),
    dataDir: tempDir(),
    env: { ...shared, TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS: `127.0.0.1:${allowed}`, TROUPE_SKILLS_POOL_SIZE: "1" }
  })
  procs.push(runner.proc)
  const port = await freePort()
  const dataDir = tempDir()
  const proc = spawnTroupe(["gateway"], {
    ...shared,
    DATABASE_URL: db.url,
    TROUPE_JWT_SECRET: Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64"),
    TROUPE_PORT: String(port),
    TROUPE_HOST: "127.0.0.1",
    TROUPE_DATA_DIR: dataDir,
    TROUPE_LOG_LEVEL: "warning"
  })
  procs.push(proc)
  await waitFor(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 150_000 })
  gateway = { url: `http://127.0.0.1:${port}`, adminUrl: "", dataDir, settings: undefined as never, close: async () => {} }
}, 300_000)

afterAll(async () => {
  await Promise.all(procs.map((p) => stop(p, "SIGKILL")))
  await db?.drop()
  await s3?.close()
  for (const server of servers) server.close()
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

/** Call until the runner's registry has the app (it polls the installs). */
const invoke = async (token: string, app: string, skill: string, input: unknown) => {
  const deadline = Date.now() + 20_000
  for (;;) {
    const reply = await request(gateway, "POST", `/v1/apps/${app}/skills/${skill}`, { token, body: { input } })
    if (reply.body?.error?.code !== "app_not_found" || Date.now() > deadline) return reply
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe("skills on runners, with the operator's TROUPE_SKILLS_* settings", () => {
  it("a plugin called through the gateway reaches the allowed private host and not another one", async () => {
    const invite = await Effect.runPromise(Effect.sync(() => NodeFs.readFileSync(NodePath.join(gateway.dataDir, "initial-admin-invite"), "utf8").trim()))
    const admin = await onboard(gateway, "root", invite)
    const token = admin.access
    expect((await request(gateway, "POST", "/v1/admin/credits/grant", { token, body: { user_id: admin.userId, amount: 100, reason: "test" } })).status).toBe(200)
    expect((await request(gateway, "PUT", `/v1/admin/users/${admin.userId}/publisher`, { token })).status).toBe(200)
    const key = await request(gateway, "POST", "/v1/api_keys", { token, body: { name: "publish", scopes: ["publish"] } })
    expect(key.status, JSON.stringify(key.body)).toBe(201)
    const keys = Signing.generate()
    const published = await Effect.runPromise(Effect.either(Client.publish({ url: gateway.url, token: key.body.key }, {
      manifest,
      modules: [{ name: "main", bytes: wasm }],
      privateKey: Either.getOrThrow(Signing.readPrivateKey(keys.privateKeyPem))
    })))
    expect(Either.isRight(published), JSON.stringify(published)).toBe(true)
    expect((await request(gateway, "POST", "/v1/admin/publishers", { token, body: { public_key: keys.publicKey, name: "Tests" } })).status).toBe(201)
    const installed = await request(gateway, "POST", "/v1/admin/apps/probe/install", { token, body: { version: "1.0.0" } })
    expect(installed.status, JSON.stringify(installed.body)).toBe(201)

    const reached = await invoke(token, "probe", "fetch", `http://127.0.0.1:${allowed}/`)
    expect(reached.status, JSON.stringify(reached.body)).toBe(200)
    expect(reached.body.result).toContain("reached allowed")
    expect(reached.body.credits_charged).toBe(1)
    const refused = await invoke(token, "probe", "fetch", `http://127.0.0.1:${other}/`)
    expect(refused.status, JSON.stringify(refused.body)).toBe(502)
    expect(refused.body.error.code).toBe("skill_egress_denied")

    const read = await invoke(token, "web", "read", { url: `http://127.0.0.1:${allowed}/` })
    expect(read.status, JSON.stringify(read.body)).toBe(200)
    expect(read.body.result.text).toContain("reached allowed")
    const readOther = await invoke(token, "web", "read", { url: `http://127.0.0.1:${other}/` })
    expect(readOther.status, JSON.stringify(readOther.body)).toBe(502)
    expect(readOther.body.error.code).toBe("skill_egress_denied")

    // the ledger names the skill that was charged
    const ledger = await request(gateway, "GET", "/v1/credits/ledger", { token })
    expect(ledger.status).toBe(200)
    expect(JSON.stringify(ledger.body)).toContain("skill:probe.fetch:session:")
  }, 120_000)
})
