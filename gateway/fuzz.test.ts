/**
 * Property: no JSON body sent to any route makes the gateway answer 5xx or hang. Bodies are
 * arbitrary JSON, not-quite-JSON text, and objects built from each route's own field names with
 * values of every JSON type (so validation paths deep inside are reached): full-unicode strings
 * (lone surrogates included), dates from the whole range JavaScript has, nesting far past the
 * gateway's depth limit; sent with a valid session.
 *
 * `TROUPE_FUZZ_RUNS` sets the number of bodies over all routes (default 425: the suite stays
 * fast); `TROUPE_FUZZ_REPORT` names a file for the figures (runs, 5xx, hangs, statuses, time).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as NodeFs from "node:fs"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { onboard } from "./testing/flows.ts"
import { initialInvite, request, startServer } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
let token: string
let chatId: string
let mateId: string
beforeAll(async () => {
  db = await createTestDatabase("gwfuzz")
  server = await startServer({ databaseUrl: db.url })
  const admin = await onboard(server, "fuzzadmin", initialInvite(server.dataDir))
  token = admin.access
  chatId = (await request(server, "POST", "/v1/chats", { token, body: {} })).body.id
  mateId = (await request(server, "POST", "/v1/mates", { token, body: { name: "Fuzzy" } })).body.id
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

/** Strings of any code points, lone surrogates included (what JSON can carry, not what Postgres can). */
const fullUnicode = fc.string({ unit: fc.integer({ min: 0, max: 0x10ffff }).map((c) => String.fromCodePoint(c)), maxLength: 40 })

/** Times from the whole range of a JavaScript date (Postgres holds years 4713 BC to 294276 AD), and their edges. */
const extremeDate = fc.oneof(
  fc.date({ min: new Date(-8.64e15), max: new Date(8.64e15), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom("+275760-09-13T00:00:00.000Z", "-271821-04-20T00:00:00.000Z", "0000-01-01T00:00:00Z", "-000001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "10000-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2030-02-30T00:00:00Z")
)

/** Arrays or objects nested 1 to 300 deep (the gateway refuses past 64). */
const deep = fc.tuple(fc.integer({ min: 1, max: 300 }), fc.boolean()).map(([depth, arrays]) => {
  let v: unknown = arrays ? [] : {}
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { k: v }
  return v
})

const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fullUnicode,
  extremeDate,
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("", "a@b.co", "0", "123456", "-1", "1e400", "2030-01-01T00:00:00Z", "not a date", "skills:math", "chats", "\u0000", "\udfff", "a\ud800b", "x".repeat(300)),
  fc.array(fc.oneof(fc.string({ maxLength: 10 }), fullUnicode, fc.integer(), fc.constantFrom("read", "chats", "skills")), { maxLength: 4 }),
  fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fullUnicode), fc.oneof(fc.string({ maxLength: 8 }), fullUnicode, fc.integer()), { maxKeys: 3 }),
  deep
)

const bodyFor = (fields: ReadonlyArray<string>): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.dictionary(fc.constantFrom(...fields), value, { maxKeys: fields.length }).map((o) => JSON.stringify(o)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: deep.map((v) => JSON.stringify(v)) },
    // unbalanced nesting too deep to parse by recursion
    { weight: 1, arbitrary: fc.integer({ min: 50, max: 20_000 }).map((n) => "[".repeat(n)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 1, arbitrary: fullUnicode }
  )

const routes = (): ReadonlyArray<{ readonly method: string; readonly path: string; readonly fields: ReadonlyArray<string>; readonly auth: boolean }> => [
  { method: "POST", path: "/v1/auth/signup", fields: ["invite_code", "email", "username", "password"], auth: false },
  { method: "POST", path: "/v1/auth/verify_email", fields: ["email", "code"], auth: false },
  { method: "POST", path: "/v1/auth/resend_verification", fields: ["email"], auth: false },
  { method: "POST", path: "/v1/auth/login", fields: ["login", "password", "totp_code"], auth: false },
  { method: "POST", path: "/v1/auth/refresh", fields: ["refresh_token"], auth: false },
  { method: "POST", path: "/v1/auth/2fa/confirm", fields: ["code"], auth: true },
  { method: "PATCH", path: "/v1/me", fields: ["display_name", "settings"], auth: true },
  { method: "POST", path: "/v1/api_keys", fields: ["name", "scopes", "expires_at", "spend_cap"], auth: true },
  { method: "POST", path: "/v1/chats", fields: ["mate_id", "title"], auth: true },
  { method: "POST", path: `/v1/chats/${chatId}/messages`, fields: ["client_message_id", "text"], auth: true },
  { method: "POST", path: `/v1/chats/${chatId}/cancel`, fields: ["turn_id"], auth: true },
  { method: "POST", path: "/v1/mates", fields: ["name", "system_prompt", "model", "allowed_skills"], auth: true },
  { method: "PATCH", path: `/v1/mates/${mateId}`, fields: ["name", "system_prompt", "model", "allowed_skills"], auth: true },
  { method: "POST", path: "/v1/admin/invites", fields: ["uses", "expires_at", "gift_credits"], auth: true },
  { method: "POST", path: "/v1/admin/credits/grant", fields: ["user_id", "amount", "reason", "idempotency_key"], auth: true },
  { method: "POST", path: "/v1/apps/math/skills/calculate", fields: ["input"], auth: true },
  { method: "POST", path: "/v1/apps/text/skills/summarize", fields: ["input"], auth: true }
]

describe("gateway input fuzzing", () => {
  it("answers every body of every JSON route with a status below 500 and the error shape", async () => {
    const seen = new Map<number, number>()
    const all = routes()
    const perRoute = Math.max(1, Math.ceil(Number(process.env.TROUPE_FUZZ_RUNS ?? 25 * all.length) / all.length))
    const started = Date.now()
    const failures: Array<string> = []
    let runs = 0
    let hangs = 0
    for (const route of all) {
      await fc.assert(
        fc.asyncProperty(bodyFor(route.fields), async (body) => {
          runs++
          const res = await request(server, route.method, route.path, { ...(route.auth ? { token } : {}), body }).catch((e: Error) => {
            // request() gives up after 30 s: a hang
            hangs++
            throw new Error(`${route.method} ${route.path} ${body.slice(0, 200)} → no answer (${e.message})`)
          })
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1)
          if (res.status >= 500) {
            failures.push(`${route.method} ${route.path} ${body.slice(0, 200)} → ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`)
            throw new Error(failures.at(-1))
          }
          if (res.status >= 400) {
            expect(typeof res.body.error.code).toBe("string")
            expect(typeof res.body.error.message).toBe("string")
          }
        }),
        { numRuns: perRoute, endOnFailure: true }
      ).finally(() => {
        if (process.env.TROUPE_FUZZ_REPORT) {
          const figures = { runs, five_xx: failures.length, hangs, seconds: (Date.now() - started) / 1000, statuses: Object.fromEntries(seen), failures }
          NodeFs.writeFileSync(process.env.TROUPE_FUZZ_REPORT, JSON.stringify(figures) + "\n")
        }
      })
    }
    // odd content types and bodies: refused or decoded, never a 5xx
    const contentTypes = ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "text/plain", "application/octet-stream", "application/json; charset=utf-16", "application/jsonp", "", "*/*"]
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes()), fc.constantFrom(...contentTypes), fc.string({ maxLength: 60 }), async (route, contentType, body) => {
        const res = await fetch(server.url + route.path, { method: route.method, headers: { authorization: `Bearer ${token}`, "content-type": contentType }, body, signal: AbortSignal.timeout(30_000) })
        if (res.status >= 500) throw new Error(`${route.method} ${route.path} [${contentType}] ${JSON.stringify(body)} → ${res.status} ${await res.text()}`)
        await res.arrayBuffer()
      }),
      { numRuns: 120 }
    )
    // NUL characters (which Postgres refuses) are refused at the edge, not stored
    for (const body of [{ display_name: "a\u0000b" }, { settings: { "k\u0000": 1 } }, { settings: { k: "v\u0000" } }]) {
      expect((await request(server, "PATCH", "/v1/me", { token, body })).status).toBe(400)
    }
    // the fuzzing reached both validation failures and accepted requests
    expect(seen.get(400) ?? 0).toBeGreaterThan(50)
    expect([...seen.keys()].some((s) => s < 300)).toBe(true)
  }, Math.max(240_000, Number(process.env.TROUPE_FUZZ_RUNS ?? 0) * 300))
})
