/**
 * Security regression test for finding 1 (issue 15): the probe's poison requests are refused at
 * the edge with a 400, and the user's next request is answered at once (no entity restart loop).
 * `runtime/EntityGuard.test.ts` shows the entity side: a message whose handler fails every time is
 * answered with `HandlerFailed` and the entity serves its next message at once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { onboard } from "../testing/flows.ts"
import { initialInvite, request, startServer } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
let token: string
beforeAll(async () => {
  db = await createTestDatabase("secpoison")
  server = await startServer({ databaseUrl: db.url })
  token = (await onboard(server, "poisoner", initialInvite(server.dataDir))).access
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

describe("finding 1: poison messages", () => {
  it("refuses what storage cannot hold with 400 and keeps answering the user at once", async () => {
    const probes: ReadonlyArray<readonly [string, string, string]> = [
      ["PATCH", "/v1/me", String.raw`{"settings":{"k":"\udfff"}}`],
      ["PATCH", "/v1/me", String.raw`{"settings":{"\ud800":1}}`],
      ["PATCH", "/v1/me", String.raw`{"display_name":"a\udc00b"}`],
      ["POST", "/v1/api_keys", `{"name":"k","scopes":["read"],"expires_at":"+275760-09-13T00:00:00.000Z"}`],
      ["POST", "/v1/api_keys", `{"name":"k","scopes":["read"],"expires_at":"-000001-01-01T00:00:00.000Z"}`],
      ["POST", "/v1/chats", String.raw`{"title":"\ud83d"}`]
    ]
    for (const [method, path, body] of probes) {
      const started = Date.now()
      const r = await request(server, method, path, { token, body })
      expect(r.status, `${method} ${path} ${body}`).toBe(400)
      expect(["invalid_json", "invalid_request"]).toContain(r.body.error.code)
      const me = await request(server, "GET", "/v1/me", { token })
      expect(me.status).toBe(200)
      expect(Date.now() - started).toBeLessThan(3_000)
    }
    // a well-formed surrogate pair is text like any other
    const emoji = await request(server, "PATCH", "/v1/me", { token, body: String.raw`{"settings":{"k":"\ud83d\ude00"}}` })
    expect(emoji.status).toBe(200)
    expect(emoji.body.settings.k).toBe("😀")
    const far = await request(server, "POST", "/v1/api_keys", { token, body: { name: "k", scopes: ["read"], expires_at: "9999-12-31T00:00:00.000Z" } })
    expect(far.status).toBe(201)
  })
})
