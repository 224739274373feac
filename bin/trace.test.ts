/**
 * One chat turn is one trace across processes: a `troupe gateway` and a `troupe runner` on
 * Postgres export OTLP/HTTP (JSON) to a receiver this test runs, configured only with the standard
 * `OTEL_EXPORTER_OTLP_ENDPOINT`; the spans of the HTTP request on the gateway and of the chat
 * entity and the turn on the runner share one trace id (the cluster carries the trace context in
 * its messages), and each process names itself `troupe-<role>`.
 */
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { verificationCode } from "../gateway/testing/server.ts"
import { randomMasterKey, type RunnerProcess, startRunner } from "../runtime/testing/cluster.ts"
import { freePort, type Spawned, spawnTroupe, stop, waitFor } from "../runtime/testing/process.ts"
import { createTestDatabase, redisUrl } from "../runtime/testing/services.ts"
import * as Deployment from "./testing/deployment.ts"

interface ReceivedSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string
  readonly name: string
  readonly attributes: Record<string, unknown>
}

let db: Awaited<ReturnType<typeof createTestDatabase>>
let receiver: NodeHttp.Server
let receiverUrl = ""
const spans: Array<ReceivedSpan> = []
const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-trace-"))
const gatewayDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-trace-gw-"))
let runner: RunnerProcess | undefined
let gateway: Spawned | undefined
let base = ""

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
const valueOf = (v: AnyValue | undefined): unknown => v?.stringValue ?? v?.intValue ?? v?.boolValue ?? v?.doubleValue
const attributesOf = (list: ReadonlyArray<{ key: string; value: AnyValue }> | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]))

beforeAll(async () => {
  // an OTLP/HTTP receiver (JSON encoding), as a collector listens on :4318
  receiver = NodeHttp.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/traces") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: AnyValue }> }; scopeSpans: Array<{ spans: Array<Record<string, any>> }> }>
        }
        for (const rs of body.resourceSpans ?? []) {
          const service = String(attributesOf(rs.resource?.attributes)["service.name"] ?? "")
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "", name: s.name, attributes: attributesOf(s.attributes) })
            }
          }
        }
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
        return
      }
      res.writeHead(404)
      res.end()
    })
  })
  const port = await freePort()
  await new Promise<void>((resolve) => receiver.listen(port, "127.0.0.1", resolve))
  receiverUrl = `http://127.0.0.1:${port}`
  db = await createTestDatabase("trace")
  const masterKey = randomMasterKey()
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl }
  runner = await startRunner({ databaseUrl: db.url, masterKey, dataDir, env: otel })
  const gatewayPort = await freePort()
  gateway = spawnTroupe(["gateway"], {
    DATABASE_URL: db.url,
    TROUPE_MASTER_KEY: masterKey,
    REDIS_URL: redisUrl(),
    REDIS_KEY_PREFIX: `troupe-trace-${Date.now()}:`,
    TROUPE_JWT_SECRET: Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64"),
    TROUPE_SIGNUP: "open",
    TROUPE_HOST: "127.0.0.1",
    TROUPE_PORT: String(gatewayPort),
    TROUPE_ADMIN_PORT: "0",
    TROUPE_DATA_DIR: gatewayDir,
    TROUPE_LOG_LEVEL: "warning",
    ...otel
  })
  base = `http://127.0.0.1:${gatewayPort}`
  await waitFor(`${base}/health`, { proc: gateway, timeoutMs: 150_000 })
}, 300_000)
afterAll(async () => {
  await Promise.all([gateway ? stop(gateway, "SIGKILL") : undefined, runner ? stop(runner.proc, "SIGKILL") : undefined])
  await new Promise<void>((resolve) => receiver?.close(() => resolve()))
  await db?.drop()
  for (const dir of [dataDir, gatewayDir]) NodeFs.rmSync(dir, { recursive: true, force: true })
})

const json = (method: string, path: string, body?: unknown, token?: string) => Deployment.json(base, method, path, body, token)

describe("traces across processes", () => {
  it("one chat turn is one trace from the gateway's HTTP request to the runner's entity and turn", async () => {
    const email = "tracer@example.com"
    expect((await json("POST", "/v1/auth/signup", { email, username: "tracer", password: "a long password 1" })).status).toBe(201)
    await json("POST", "/v1/auth/verify_email", { email, code: verificationCode(gatewayDir, email) })
    const login = await json("POST", "/v1/auth/login", { login: "tracer", password: "a long password 1" })
    expect(login.status).toBe(200)
    const token = login.body.access_token as string
    const chat = await json("POST", "/v1/chats", {}, token)
    expect(chat.status).toBe(201)
    const chatId = chat.body.id as string
    const posted = await json("POST", `/v1/chats/${chatId}/messages`, { client_message_id: "t1", text: "hello" }, token)
    expect(posted.status, JSON.stringify(posted.body)).toBe(202)
    // the turn ends (the mate answers with its setup help: no model is configured)
    const deadline = Date.now() + 60_000
    let ended = false
    while (!ended && Date.now() < deadline) {
      const got = await json("GET", `/v1/chats/${chatId}`, undefined, token)
      ended = got.status === 200 && (got.body.messages as Array<{ role: string }>).some((m) => m.role === "mate")
      if (!ended) await new Promise((r) => setTimeout(r, 200))
    }
    expect(ended).toBe(true)

    // the HTTP request's span on the gateway, then spans of the same trace from the runner
    const postSpan = () =>
      spans.find((s) => s.service === "troupe-gateway" && String(s.attributes["url.path"] ?? s.attributes["http.target"] ?? s.attributes["http.url"] ?? "").endsWith(`/v1/chats/${chatId}/messages`))
    const onRunner = (traceId: string) => spans.filter((s) => s.service === "troupe-runner" && s.traceId === traceId)
    /** Spans whose parent has not arrived (yet: a parent ends, and is exported, after its children). */
    const orphans = (traceId: string) => {
      const ids = new Set(spans.filter((s) => s.traceId === traceId).map((s) => s.spanId))
      return spans.filter((s) => s.traceId === traceId && s.parentSpanId !== "" && !ids.has(s.parentSpanId))
    }
    const complete = () => {
      const root = postSpan()
      return root !== undefined && onRunner(root.traceId).some((s) => /\.RunTurn$/.test(s.name) && /^Chat\(/.test(s.name)) && orphans(root.traceId).length === 0
    }
    const until = Date.now() + 30_000
    while (Date.now() < until && !complete()) await new Promise((r) => setTimeout(r, 250))
    const root = postSpan()
    const dump = () =>
      JSON.stringify(spans.filter((s) => (root ? s.traceId === root.traceId : s.service === "troupe-gateway")).map((s) => [s.service, s.name, s.spanId.slice(0, 6), s.parentSpanId.slice(0, 6)]))
    expect(root, dump()).toBeDefined()
    expect(root!.traceId).toMatch(/^[0-9a-f]{32}$/)
    const runnerSpans = onRunner(root!.traceId)
    // the chat entity's Post handled on the runner, the turn it sent itself (RunTurn), and what the
    // turn called (the mate's lookup, the credit hold reserved and settled), in the request's trace
    const names = runnerSpans.map((s) => s.name)
    expect(names.some((n) => /^Chat\(.+\)\.Post$/.test(n)), dump()).toBe(true)
    expect(names.some((n) => /^Chat\(.+\)\.RunTurn$/.test(n)), dump()).toBe(true)
    expect(names.some((n) => /^User\(.+\)\.GetMate$/.test(n)), dump()).toBe(true)
    expect(names.some((n) => /^Credit\(.+\)\.Reserve/.test(n)), dump()).toBe(true)
    expect(names.some((n) => /^Credit\(.+\)\.Settle/.test(n)), dump()).toBe(true)
    // the gateway's cluster call is the parent of the runner's Post: the context crossed in the message
    const call = spans.find((s) => s.service === "troupe-gateway" && s.traceId === root!.traceId && s.name === "Chat.client.Post")
    expect(call, dump()).toBeDefined()
    expect(call!.parentSpanId).toBe(root!.spanId)
    expect(runnerSpans.find((s) => /^Chat\(.+\)\.Post$/.test(s.name))!.parentSpanId).toBe(call!.spanId)
    expect(orphans(root!.traceId), dump()).toEqual([])
    // another request is another trace
    expect(new Set(spans.filter((s) => s.service === "troupe-gateway").map((s) => s.traceId)).size).toBeGreaterThan(1)
  }, 180_000)
})
