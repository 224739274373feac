/**
 * The MCP server at `/mcp` with the official MCP TypeScript client (`Client` +
 * `StreamableHTTPClientTransport`): an API key lists the skills it may call — an app installed
 * from the store and first-party ones — as tools and calls them, billed as REST calls; a key
 * scoped to another app gets `insufficient_scope`, a key over its spend cap `spend_cap_exceeded`,
 * and neither is charged; a request without a key is refused with 401.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import * as StoreClient from "../../skills/store/Client.ts"
import * as Signing from "../../skills/store/Signing.ts"
import { onboard } from "../testing/flows.ts"
import { initialInvite, request, startServer, type TestServer } from "../testing/server.ts"

const wasm = new Uint8Array(NodeFs.readFileSync(NodePath.join(fixturesDir(), "extism", "hello-from-assemblyscript.wasm")))
const manifest = {
  id: "hello",
  name: "Hello",
  version: "1.0.0",
  description: "Greets whoever asks, from AssemblyScript",
  publisher: "Ada",
  abi: "extism-v1",
  permissions: { allowedHosts: [], wasi: false, hostFunctions: [] },
  skills: [{ name: "hello", description: "Says hello", input: { type: "string" }, output: { type: "string" }, pricing: { model: "fixed", credits: 1 }, sideEffects: "read" }]
}
const keys = Signing.generate()

let db: Awaited<ReturnType<typeof createTestDatabase>>
let s: TestServer
let admin: string
const open: Array<Client> = []

const connect = async (key?: string) => {
  const client = new Client({ name: "mcp-test", version: "1.0.0" })
  const transport = new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), {
    requestInit: key ? { headers: { authorization: `Bearer ${key}` } } : {}
  })
  await client.connect(transport)
  open.push(client)
  return client
}

const apiKey = async (scopes: Array<string>, spendCap?: number) => {
  const created = await request(s, "POST", "/v1/api_keys", { token: admin, body: { name: scopes.join(" "), scopes, ...(spendCap === undefined ? {} : { spend_cap: spendCap }) } })
  expect(created.status, JSON.stringify(created.body)).toBe(201)
  return created.body.key as string
}

const credits = async () => (await request(s, "GET", "/v1/credits", { token: admin })).body

beforeAll(async () => {
  db = await createTestDatabase("mcp")
  s = await startServer({ databaseUrl: db.url })
  admin = (await onboard(s, "root", initialInvite(s.dataDir))).access
  // an app from the store: published signed, its key trusted, installed
  const publishKey = await apiKey(["publish"])
  const privateKey = Either.getOrThrow(Signing.readPrivateKey(keys.privateKeyPem))
  await Effect.runPromise(StoreClient.publish({ url: s.url, token: publishKey }, { manifest, modules: [{ name: "main", bytes: wasm }], privateKey }))
  expect((await request(s, "POST", "/v1/admin/publishers", { token: admin, body: { public_key: keys.publicKey, name: "Ada" } })).status).toBe(201)
  const installed = await request(s, "POST", "/v1/admin/apps/hello/install", { token: admin, body: { version: "1.0.0" } })
  expect(installed.status, JSON.stringify(installed.body)).toBe(201)
}, 120_000)

afterAll(async () => {
  for (const c of open) await c.close().catch(() => undefined)
  await s?.close()
  await db?.drop()
})

describe("MCP server at /mcp", () => {
  it("lists installed and first-party skills as tools and calls them, charged like REST calls", async () => {
    const client = await connect(await apiKey(["skills"]))
    expect(client.getServerVersion()?.name).toBe("troupe")
    const { tools } = await client.listTools()
    const byName = new Map(tools.map((t) => [t.name, t]))
    expect([...byName.keys()]).toEqual(expect.arrayContaining(["hello_hello", "math_calculate", "text_summarize"]))
    // a string input is wrapped as {input}; an object input schema is the tool's own
    expect(byName.get("hello_hello")!.inputSchema).toMatchObject({ type: "object", properties: { input: { type: "string" } }, required: ["input"] })
    expect(byName.get("math_calculate")!.inputSchema.properties).toHaveProperty("expression")
    expect(byName.get("hello_hello")!.description).toMatch(/Says hello \(1 credit/)

    const before = await credits()
    const hello = await client.callTool({ name: "hello_hello", arguments: { input: "Hi!" } })
    expect(hello.isError).toBeFalsy()
    expect(hello.content).toEqual([{ type: "text", text: "\"Hi!\"\nHello from AssemblyScript!" }])
    expect(hello._meta).toMatchObject({ "troupe/credits_charged": 1 })
    expect(await credits()).toEqual({ available: before.available - 1, reserved: 0 })

    const math = await client.callTool({ name: "math_calculate", arguments: { expression: "6*7" } })
    expect(math.isError).toBeFalsy()
    expect(math.structuredContent).toMatchObject({ result: 42 })

    const bad = await client.callTool({ name: "math_calculate", arguments: { expression: "6*" } })
    expect(bad.isError).toBe(true)
    expect((bad.structuredContent as { error: { code: string } }).error.code).toBe("invalid_input")
    await expect(client.callTool({ name: "nope_nothing", arguments: {} })).rejects.toThrow(/Unknown tool/)
  })

  it("a key scoped to one app sees only its tools; another app is insufficient_scope, over the cap spend_cap_exceeded, nothing charged", async () => {
    const client = await connect(await apiKey(["skills:text"], 1))
    const { tools } = await client.listTools()
    expect(tools.length).toBeGreaterThan(0)
    expect(tools.every((t) => t.name.startsWith("text_"))).toBe(true)

    const before = await credits()
    const other = await client.callTool({ name: "hello_hello", arguments: { input: "Hi!" } })
    expect(other.isError).toBe(true)
    expect((other.content as Array<{ text: string }>)[0]!.text).toMatch(/^insufficient_scope: /)
    const text = "Troupe is a platform. Mates use skills. Skills are sandboxed. Credits pay for them. Streams resume. ".repeat(20)
    const capped = await client.callTool({ name: "text_summarize", arguments: { text } })
    expect(capped.isError).toBe(true)
    expect((capped.structuredContent as { error: { code: string } }).error.code).toBe("spend_cap_exceeded")
    expect(await credits()).toEqual(before)
  })

  it("refuses a request without an API key or with an unknown one (401)", async () => {
    const refused = await connect().then(() => undefined, (e: unknown) => e)
    expect(refused).toBeInstanceOf(StreamableHTTPError)
    expect((refused as StreamableHTTPError).code).toBe(401)
    const raw = await fetch(`${s.url}/mcp`, {
      method: "POST",
      headers: { authorization: "Bearer trp_bogus", "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" })
    })
    expect(raw.status).toBe(401)
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key")
    expect((await fetch(`${s.url}/mcp`)).status).toBe(405)
  })
})
