/**
 * Security regression tests for the gateway's edge (issue 15): path spelling and the auth limit
 * (finding 3), nesting depth (5), the admin listener (8), the embedded preview's access (9),
 * headers and bodies (10). Each test failed before its fix.
 */
import * as Duration from "effect/Duration"
import * as NodeHttp from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { onboard } from "../testing/flows.ts"
import { initialInvite, request, startServer } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
let token: string
const authPoints = 8

beforeAll(async () => {
  db = await createTestDatabase("secedge")
  server = await startServer({
    databaseUrl: db.url,
    settings: {
      rateLimits: {
        perIp: { points: 100_000, duration: Duration.seconds(60) },
        perUser: { points: 100_000, duration: Duration.seconds(60) },
        auth: { points: authPoints, duration: Duration.seconds(60) },
        loginFailures: { points: 10, duration: Duration.minutes(15) }
      }
    },
    preview: {}
  })
  const admin = await onboard(server, "edgeadmin", initialInvite(server.dataDir))
  token = admin.access
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

/** A request sent exactly as spelled (fetch would normalise the path). */
const raw = (
  base: string,
  path: string,
  options: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: string | Buffer } = {}
) =>
  new Promise<{ status: number; headers: NodeHttp.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const u = new URL(base)
    const req = NodeHttp.request({ host: u.hostname, port: u.port, path, method: options.method ?? "GET", headers: options.headers ?? {} }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => (body += c))
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    })
    req.on("error", reject)
    req.end(options.body)
  })

const code = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code

describe("finding 3: one spelling per route", () => {
  it("refuses other spellings of /v1/auth/login with 404, so the auth limit cannot be sidestepped", async () => {
    const login = JSON.stringify({ login: "nobody", password: "wrong password" })
    const headers = { "content-type": "application/json" }
    for (const path of ["/v1/AUTH/login", "/v1//auth/login", "/v1/%61uth/login", "/v1/auth/./login", "/v1/x/../auth/login", "/V1/auth/login", "/v1/auth/LOGIN"]) {
      const r = await raw(server.url, path, { method: "POST", headers, body: login })
      expect(r.status, path).toBe(404)
      expect(code(r.body)).toBe("not_found")
    }
    // the canonical path is limited as configured: the variants above were never counted as
    // logins, and nothing reaches the handler past the limit
    const statuses: Array<number> = []
    for (let i = 0; i < authPoints + 2; i++) statuses.push((await raw(server.url, "/v1/auth/login", { method: "POST", headers, body: login })).status)
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(authPoints)
    expect(statuses.at(-1)).toBe(429)
  })
})

describe("finding 5: nesting depth", () => {
  it("answers deeply nested JSON with 400 invalid_json, never 500", async () => {
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n)
    for (const [method, path, body] of [
      ["PATCH", "/v1/me", `{"settings":{"a":${deep(100_000)}}}`],
      ["POST", "/v1/apps/math/skills/calculate", `{"input":${deep(5_000)}}`],
      ["POST", "/v1/chats", `${"{\"a\":".repeat(70)}1${"}".repeat(70)}`]
    ] as const) {
      const r = await request(server, method, path, { token, body })
      expect(r.status, path).toBe(400)
      expect(r.body.error.code).toBe("invalid_json")
    }
    // 64 levels are fine as JSON; the route's schema decides the rest (settings: 32 levels)
    const ok = await request(server, "PATCH", "/v1/me", { token, body: `{"settings":{"a":${deep(30)}}}` })
    expect(ok.status).toBe(200)
    const deepSettings = await request(server, "PATCH", "/v1/me", { token, body: `{"settings":{"a":${deep(40)}}}` })
    expect(deepSettings.status).toBe(400)
    expect(deepSettings.body.error.code).toBe("invalid_request")
  })
})

describe("finding 8: operational endpoints", () => {
  it("keeps /metrics and /health/detailed off the public port; the admin listener serves them", async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200)
    for (const path of ["/metrics", "/health/detailed"]) {
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(404)
      expect((await fetch(`${server.adminUrl}${path}`)).status, path).toBe(200)
    }
    expect(server.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:/)
    expect(await (await fetch(`${server.adminUrl}/metrics`)).text()).toContain("troupe_http_requests_total")
  })
})

describe("finding 9: the preview is not anonymous", () => {
  const target = `/api/v1/metadata?url=${encodeURIComponent("http://169.254.169.254/latest")}`

  it("refuses strangers and admits the app's sessions (bearer or cookie); no wildcard CORS", async () => {
    const stranger = await raw(server.url, target, { headers: { origin: "https://evil.example" } })
    expect(stranger.status).toBe(401)
    expect(code(stranger.body)).toBe("authentication_required")
    expect(stranger.headers["access-control-allow-origin"]).toBeUndefined()
    const forged = await raw(server.url, target, { headers: { authorization: "Bearer not-a-token" } })
    expect(forged.status).toBe(401)
    // signed in: the policy lets it through, and the fetch guard then refuses the private target
    const bearer = await raw(server.url, target, { headers: { authorization: `Bearer ${token}` } })
    expect(bearer.status).toBe(403)
    expect(code(bearer.body)).toBe("blocked_address")
    const cookie = await raw(server.url, target, { headers: { cookie: `troupe_access=${token}`, origin: "https://evil.example" } })
    expect(cookie.status).toBe(403)
    expect(cookie.headers["access-control-allow-origin"]).toBeUndefined()
  })
})

describe("finding 10: headers and bodies", () => {
  it("gives /docs a hash-based CSP and every other response a strict one", async () => {
    const docs = await fetch(`${server.url}/docs`)
    await docs.arrayBuffer()
    const policy = docs.headers.get("content-security-policy") ?? ""
    expect(policy).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/)
    expect(policy).toContain("frame-ancestors 'none'")
    expect(policy).not.toContain("unsafe-inline")
    const api = await request(server, "GET", "/v1/me", { token })
    expect(api.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    expect(api.headers.get("strict-transport-security")).toBeNull()
  })

  it("sends HSTS when the public URL is https", async () => {
    const other = await createTestDatabase("sechsts")
    const https = await startServer({ databaseUrl: other.url, env: { TROUPE_PUBLIC_URL: "https://troupe.example" } })
    try {
      const r = await fetch(`${https.url}/health`)
      expect(r.headers.get("strict-transport-security")).toBe("max-age=31536000; includeSubDomains")
    } finally {
      await https.close()
      await other.drop()
    }
  })

  it("answers an oversize chunked body with 413, not a reset", async () => {
    const big = Buffer.alloc(server.settings.maxBodyBytes + 64 * 1024, 0x61)
    const r = await raw(server.url, "/v1/chats", {
      method: "POST",
      headers: { "content-type": "application/json", "transfer-encoding": "chunked", authorization: `Bearer ${token}` },
      body: big
    })
    expect(r.status).toBe(413)
    expect(code(r.body)).toBe("payload_too_large")
    // the server is fine afterwards
    expect((await request(server, "GET", "/v1/me", { token })).status).toBe(200)
  })

  it("answers a body without Content-Type with 415", async () => {
    const r = await raw(server.url, "/v1/chats", { method: "POST", headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ title: "x" }) })
    expect(r.status).toBe(415)
    expect(code(r.body)).toBe("unsupported_media_type")
    // an empty body needs no Content-Type (this route takes none)
    const chat = await request(server, "POST", "/v1/chats", { token, body: {} })
    const empty = await raw(server.url, `/v1/chats/${chat.body.id}/cancel`, { method: "POST", headers: { authorization: `Bearer ${token}` } })
    expect(empty.status).toBe(409)
    expect(code(empty.body)).toBe("no_running_turn")
  })

  it("does not echo the offending value beyond a short prefix", async () => {
    const secret = "s3cr3t-".repeat(2_000)
    const r = await request(server, "POST", "/v1/mates", { token, body: { name: secret } })
    expect(r.status).toBe(400)
    const text = JSON.stringify(r.body)
    expect(text).not.toContain(secret.slice(0, 100))
    expect(r.body.error.message.length).toBeLessThanOrEqual(250)
    expect(r.body.error.message).toContain("name")
  })
})
