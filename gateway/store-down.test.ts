/**
 * The registry down, seen through the gateway: with `TROUPE_REGISTRY_URL` pointing at a registry
 * that is not listening, or at one that accepts connections and never answers, installing and
 * syncing answer `503 registry_unavailable` within the registry timeout instead
 * of hanging, browsing answers from the catalog, and the server keeps serving everything else.
 */
import * as Option from "effect/Option"
import * as NodeNet from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../runtime/testing/process.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { onboard } from "./testing/flows.ts"
import { initialInvite, request, startServer, type TestServer } from "./testing/server.ts"

const sockets: Array<NodeNet.Socket> = []
const silent = NodeNet.createServer((s) => void sockets.push(s))
let db: Awaited<ReturnType<typeof createTestDatabase>>
const servers: Array<TestServer> = []

beforeAll(async () => {
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
  db = await createTestDatabase("storedown")
}, 60_000)

afterAll(async () => {
  for (const s of servers) await s.close()
  for (const s of sockets) s.destroy()
  silent.close()
  await db?.drop()
})

const check = async (s: TestServer, admin: string) => {
  // each request must answer well within the test's own 30 s fetch timeout
  // browsing answers from the catalog (the registry being down does not hide it)
  const shown = await request(s, "GET", "/v1/store/apps/hello", { token: admin })
  expect(shown.status, JSON.stringify(shown.body)).toBe(404)
  expect(shown.body.error.code).toBe("app_not_found")
  const install = await request(s, "POST", "/v1/admin/apps/hello/install", { token: admin, body: { version: "1.0.0" } })
  expect(install.status, JSON.stringify(install.body)).toBe(503)
  expect(install.body.error.code).toBe("registry_unavailable")
  const sync = await request(s, "POST", "/v1/admin/store/sync", { token: admin })
  expect(sync.status, JSON.stringify(sync.body)).toBe(503)
  expect(sync.body.error.code).toBe("registry_unavailable")
  // everything else still answers
  expect((await request(s, "GET", "/v1/apps", { token: admin })).status).toBe(200)
  expect((await request(s, "POST", "/v1/apps/math/skills/calculate", { token: admin, body: { input: { expression: "2+2" } } })).body.result).toMatchObject({ result: 4 })
}

describe("the registry down, through the gateway", () => {
  it("a registry that is not listening: 503 registry_unavailable at once; then one that never answers: 503 after its timeout", async () => {
    const closed = await freePort()
    const s = await startServer({ databaseUrl: db.url, store: { registry: Option.some({ url: `http://127.0.0.1:${closed}`, timeoutMs: 1_000 }) } })
    servers.push(s)
    const admin = (await onboard(s, "root", initialInvite(s.dataDir))).access
    await check(s, admin)
    await s.close()
    servers.pop()

    const port = (silent.address() as NodeNet.AddressInfo).port
    const hung = await startServer({ databaseUrl: db.url, store: { registry: Option.some({ url: `http://127.0.0.1:${port}`, timeoutMs: 1_000 }) } })
    servers.push(hung)
    const login = await request(hung, "POST", "/v1/auth/login", { body: { login: "root", password: "a long password 1" } })
    await check(hung, login.body.access_token)
    const message = (await request(hung, "POST", "/v1/admin/store/sync", { token: login.body.access_token })).body.error.message as string
    expect(message).toContain("no answer within 1000 ms")
  }, 120_000)
})
