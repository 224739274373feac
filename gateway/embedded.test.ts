/**
 * The main path on the embedded default: PGlite in the data dir, the memory cache and memory
 * rate limits, open signup.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import { onboardAndChat } from "./testing/flows.ts"
import { request, startServer } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

let server: TestServer
beforeAll(async () => {
  server = await startServer({
    settings: {
      signup: { _tag: "Open" },
      corsOrigins: ["https://app.example.com"],
      rateLimits: {
        perIp: { points: 100_000, duration: Duration.seconds(60) },
        perUser: { points: 100_000, duration: Duration.seconds(60) },
        auth: { points: 12, duration: Duration.seconds(60) },
        loginFailures: { points: 10, duration: Duration.minutes(15) }
      }
    }
  })
}, 120_000)
afterAll(async () => {
  await server?.close()
})

describe("gateway on the embedded default (PGlite, memory cache)", () => {
  it("signup → verify → login → chat → stream → cancel → delete", async () => {
    await onboardAndChat(server, "pat")
  })

  it("allows cross-origin requests only from the allowlist", async () => {
    const preflight = await fetch(server.url + "/v1/chats", {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" }
    })
    expect(preflight.status).toBeLessThan(300)
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com")
    expect(preflight.headers.get("access-control-allow-credentials")).toBe("true")
    const allowed = await fetch(server.url + "/v1/openapi.json", { headers: { origin: "https://app.example.com" } })
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example.com")
    const other = await fetch(server.url + "/v1/openapi.json", { headers: { origin: "https://evil.example.net" } })
    expect(other.headers.get("access-control-allow-origin")).toBeNull()
  })

  it("limits /v1/auth/* per client address in memory with 429 and Retry-After", async () => {
    const statuses: Array<number> = []
    let retryAfter: string | null = null
    for (let i = 0; i < 14; i++) {
      const res = await request(server, "POST", "/v1/auth/resend_verification", { body: { email: "nobody@example.com" } })
      statuses.push(res.status)
      if (res.status === 429) retryAfter = res.headers.get("retry-after")
    }
    expect(statuses).toContain(429)
    expect(statuses.filter((s) => s !== 429).every((s) => s === 202)).toBe(true)
    expect(Number(retryAfter)).toBeGreaterThan(0)
    // other routes are not limited by the auth bucket
    expect((await request(server, "GET", "/v1/openapi.json")).status).toBe(200)
  })
})
