/**
 * Security regression tests for sessions (issue 15): logout survives a restart (finding 4).
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { onboard } from "../testing/flows.ts"
import { initialInvite, request, startServer } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"
import * as GatewayConfig from "../Config.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-sec-sessions-"))
const servers: Array<TestServer> = []

beforeAll(async () => {
  db = await createTestDatabase("secsessions")
}, 60_000)
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()))
  await db?.drop()
  NodeFs.rmSync(dataDir, { recursive: true, force: true })
})

describe("finding 4: revocations are durable", () => {
  it("a logged-out, logged-out-everywhere or reused-refresh session stays refused after a restart (memory cache)", async () => {
    // the memory cache (no REDIS_URL), as on the embedded default: it starts empty
    const settings = GatewayConfig.make({ dataDir })
    const first = await startServer({ databaseUrl: db.url, dataDir, settings })
    servers.push(first)
    const user = await onboard(first, "durable", initialInvite(dataDir))
    const second = await request(first, "POST", "/v1/auth/login", { body: { login: "durable", password: "a long password 1" } })
    const third = await request(first, "POST", "/v1/auth/login", { body: { login: "durable", password: "a long password 1" } })
    const kept = await request(first, "POST", "/v1/auth/login", { body: { login: "durable", password: "a long password 1" } })
    // logout; refresh-token reuse; and a session that stays valid
    expect((await request(first, "POST", "/v1/auth/logout", { token: user.access })).status).toBe(204)
    const rotated = await request(first, "POST", "/v1/auth/refresh", { body: { refresh_token: second.body.refresh_token } })
    expect(rotated.status).toBe(200)
    expect((await request(first, "POST", "/v1/auth/refresh", { body: { refresh_token: second.body.refresh_token } })).body.error.code).toBe("refresh_token_reused")
    for (const token of [user.access, second.body.access_token, rotated.body.access_token]) {
      expect((await request(first, "GET", "/v1/me", { token })).body.error.code).toBe("session_revoked")
    }
    expect((await request(first, "GET", "/v1/me", { token: third.body.access_token })).status).toBe(200)
    await first.close()
    servers.length = 0

    const again = await startServer({ databaseUrl: db.url, dataDir, settings })
    servers.push(again)
    for (const token of [user.access, second.body.access_token, rotated.body.access_token]) {
      const r = await request(again, "GET", "/v1/me", { token })
      expect(r.status).toBe(401)
      expect(r.body.error.code).toBe("session_revoked")
    }
    expect((await request(again, "GET", "/v1/me", { token: third.body.access_token })).status).toBe(200)
    // logout everywhere, then another restart
    expect((await request(again, "POST", "/v1/auth/logout_all", { token: kept.body.access_token })).status).toBe(200)
    await again.close()
    servers.length = 0
    const last = await startServer({ databaseUrl: db.url, dataDir, settings })
    servers.push(last)
    for (const token of [third.body.access_token, kept.body.access_token]) {
      expect((await request(last, "GET", "/v1/me", { token })).body.error.code).toBe("session_revoked")
    }
  }, 120_000)
})
