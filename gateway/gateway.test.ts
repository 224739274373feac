/**
 * The gateway over real HTTP on Postgres + Redis (the production shape): the whole account and
 * chat path, token security, API key scopes and spend caps, skills with credits, brute-force
 * limits, OpenAPI.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Jose from "jose"
import * as OTPAuth from "otpauth"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { createTestDatabase, redisUrl } from "../runtime/testing/services.ts"
import { onboard, readEvents } from "./testing/flows.ts"
import { initialInvite, request, startServer, verificationCode } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
beforeAll(async () => {
  db = await createTestDatabase("gateway")
  server = await startServer({
    databaseUrl: db.url,
    redisUrl: redisUrl(),
    settings: {
      heartbeat: Duration.millis(300),
      startingCredits: 50,
      rateLimits: {
        perIp: { points: 100_000, duration: Duration.seconds(60) },
        perUser: { points: 100_000, duration: Duration.seconds(60) },
        auth: { points: 10_000, duration: Duration.seconds(60) },
        loginFailures: { points: 5, duration: Duration.minutes(15) }
      }
    }
  })
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

describe("gateway on Postgres + Redis", () => {
  it("first run: prints an admin invite once, keeps it in a 0600 file until the first admin signs up with it (no mailed code without SMTP)", async () => {
    const path = NodePath.join(server.dataDir, "initial-admin-invite")
    expect(NodeFs.statSync(path).mode & 0o777).toBe(0o600)
    const invite = initialInvite(server.dataDir)
    // a signed-out page learns where the invite is while the server has no admin
    const before = await request(server, "GET", "/v1/setup")
    expect(before.body).toEqual({ signup: "invite_only", needs_admin: true, initial_invite_file: path, mail: "outbox", outbox_dir: NodePath.join(server.dataDir, "outbox") })
    // invite-only by default
    const refused = await request(server, "POST", "/v1/auth/signup", { body: { email: "x@example.com", username: "xavier", password: "a long password 1" } })
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe("invite_required")
    // the initial invite proves the operator: no code is mailed, the account can sign in at once
    const signup = await request(server, "POST", "/v1/auth/signup", { body: { email: "admin@example.com", username: "admin", password: "a long password 1", invite_code: invite } })
    expect(signup.status).toBe(201)
    expect(signup.body).toMatchObject({ role: "admin", email_verification: "not_needed" })
    expect(() => verificationCode(server.dataDir, "admin@example.com")).toThrow()
    const adminLogin = await request(server, "POST", "/v1/auth/login", { body: { login: "admin", password: "a long password 1" } })
    expect(adminLogin.status).toBe(200)
    const admin = { access: adminLogin.body.access_token as string }
    expect(NodeFs.existsSync(path)).toBe(false)
    // and the server stops telling where its files are
    expect((await request(server, "GET", "/v1/setup")).body).toEqual({ signup: "invite_only", needs_admin: false, initial_invite_file: null, mail: "outbox", outbox_dir: null })
    // the admin sees the health of the server's parts through the API (the detailed page is on the admin port)
    const health = await request(server, "GET", "/v1/admin/health", { token: admin.access })
    expect(health.status).toBe(200)
    expect(health.body).toMatchObject({ status: "healthy", failed: [], checks: { database: { status: "healthy" }, cache: { status: "healthy" } } })
    expect((await request(server, "GET", "/v1/admin/health")).status).toBe(401)
    const me = await request(server, "GET", "/v1/me", { token: admin.access })
    expect(me.body).toMatchObject({ username: "admin", role: "admin", email_verified: true })
    // the invite was for one use
    const again = await request(server, "POST", "/v1/auth/signup", { body: { email: "y@example.com", username: "yann", password: "a long password 1", invite_code: invite } })
    expect(again.status).toBe(403)
    expect(again.body.error).toMatchObject({ code: "invite_invalid", details: { reason: "used_up" } })
  })

  it("signup → verify → login → 2FA → chat → stream → resume after disconnect → cancel → delete", async () => {
    const adminLogin = await request(server, "POST", "/v1/auth/login", { body: { login: "admin", password: "a long password 1" } })
    const invite = await request(server, "POST", "/v1/admin/invites", { token: adminLogin.body.access_token, body: { uses: 5, gift_credits: 25 } })
    expect(invite.status).toBe(201)
    const user = await onboard(server, "ada", invite.body.code)
    expect((await request(server, "GET", "/v1/credits", { token: user.access })).body).toEqual({ available: 75, reserved: 0 })

    // 2FA
    const setup = await request(server, "POST", "/v1/auth/2fa/setup", { token: user.access })
    expect(setup.status).toBe(200)
    expect(setup.body.otpauth_uri).toMatch(/^otpauth:\/\/totp\//)
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(setup.body.secret) })
    const confirm = await request(server, "POST", "/v1/auth/2fa/confirm", { token: user.access, body: { code: totp.generate() } })
    expect(confirm.status).toBe(200)
    expect(confirm.body.backup_codes).toHaveLength(10)
    const needs = await request(server, "POST", "/v1/auth/login", { body: { login: "ada@example.com", password: "a long password 1" } })
    expect(needs.status).toBe(401)
    expect(needs.body.error.code).toBe("totp_required")
    const login = await request(server, "POST", "/v1/auth/login", { body: { login: "ada@example.com", password: "a long password 1", totp_code: confirm.body.backup_codes[0] } })
    expect(login.status).toBe(200)
    const token = login.body.access_token as string

    // chat
    const chat = await request(server, "POST", "/v1/chats", { token, body: { title: "First" } })
    expect(chat.status).toBe(201)
    const chatId = chat.body.id as string
    const posted = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: "m1", text: "hello there" } })
    expect(posted.status, JSON.stringify(posted.body)).toBe(202)
    expect(posted.body).toMatchObject({ duplicate: false })
    const dup = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: "m1", text: "hello there" } })
    expect(dup.body).toMatchObject({ duplicate: true, turn_id: posted.body.turn_id })

    // stream until the turn is done, with heartbeats
    const first = await readEvents(server, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done" || e.event === "error"))
    expect(first.events.map((e) => e.event)).toContain("message_stored")
    expect(first.events.at(-1)!.event).toBe("done")
    const ids = first.events.map((e) => e.id)
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
    expect(new Set(ids).size).toBe(ids.length)

    // resume after a disconnect: Last-Event-ID and ?after= give exactly the rest
    const cut = ids[1]!
    const resumed = await readEvents(server, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done"), { "last-event-id": String(cut) })
    expect(resumed.events.map((e) => e.id)).toEqual(ids.filter((id) => id > cut))
    const viaQuery = await readEvents(server, `/v1/chats/${chatId}/events?after=${cut}`, token, (es) => es.some((e) => e.event === "done"))
    expect(viaQuery.events.map((e) => e.id)).toEqual(ids.filter((id) => id > cut))
    // heartbeats keep an idle stream open
    const idle = await readEvents(server, `/v1/chats/${chatId}/events?after=${ids.at(-1)}`, token, (_, comments) => comments >= 3)
    expect(idle.events).toEqual([])
    expect(idle.comments).toBeGreaterThanOrEqual(3)

    const history = await request(server, "GET", `/v1/chats/${chatId}`, { token })
    expect(history.status).toBe(200)
    expect(history.body.messages.map((m: { role: string }) => m.role)).toEqual(["user", "mate"])
    const mateMessage = history.body.messages[1].id as string
    expect((await request(server, "DELETE", `/v1/chats/${chatId}/messages/${mateMessage}`, { token })).status).toBe(204)
    expect((await request(server, "DELETE", `/v1/chats/${chatId}/messages/nosuchmessage`, { token })).body.error.code).toBe("message_not_found")
    expect((await request(server, "GET", "/v1/chats", { token })).body.chats.map((c: { id: string }) => c.id)).toEqual([chatId])

    // cancel: nothing running now → 409; a new turn can be cancelled
    const idleCancel = await request(server, "POST", `/v1/chats/${chatId}/cancel`, { token })
    expect([200, 409]).toContain(idleCancel.status)
    const second = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: "m2", text: "tell me more" } })
    expect(second.status).toBe(202)
    const cancelled = await request(server, "POST", `/v1/chats/${chatId}/cancel`, { token, body: { turn_id: second.body.turn_id } })
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200)
    expect(["cancelled", "done"]).toContain(cancelled.body.status)

    // another user sees nothing
    const eve = await onboard(server, "eve", invite.body.code)
    expect((await request(server, "GET", `/v1/chats/${chatId}`, { token: eve.access })).status).toBe(404)
    expect((await request(server, "DELETE", `/v1/chats/${chatId}`, { token: eve.access })).status).toBe(404)
    expect((await request(server, "PATCH", `/v1/chats/${chatId}`, { token: eve.access, body: { title: "mine now" } })).status).toBe(404)

    // rename: the owner only; the list and the chat show the new title
    const renamed = await request(server, "PATCH", `/v1/chats/${chatId}`, { token, body: { title: "  Plans   for Monday " } })
    expect(renamed.status, JSON.stringify(renamed.body)).toBe(200)
    expect(renamed.body.title).toBe("Plans for Monday")
    expect((await request(server, "GET", "/v1/chats", { token })).body.chats.map((c: { title: string }) => c.title)).toEqual(["Plans for Monday"])
    expect((await request(server, "PATCH", `/v1/chats/${chatId}`, { token, body: { title: "x".repeat(201) } })).status).toBe(400)

    // share, then delete: the share and the chat are gone
    const share = await request(server, "POST", `/v1/chats/${chatId}/share`, { token })
    expect(share.status).toBe(201)
    expect(share.body.url).toBe(`/s/${share.body.token}#${share.body.key}`)
    expect((await request(server, "GET", `/v1/shares/${share.body.token}`)).status).toBe(200)
    const page = await fetch(server.url + `/s/${share.body.token}`)
    expect(page.status).toBe(200)
    expect(page.headers.get("content-type")).toContain("text/html")
    expect(page.headers.get("content-security-policy")).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'; /)
    expect((await request(server, "DELETE", `/v1/chats/${chatId}`, { token })).status).toBe(204)
    expect((await request(server, "GET", `/v1/chats/${chatId}`, { token })).status).toBe(404)
    expect((await request(server, "GET", `/v1/shares/${share.body.token}`)).status).toBe(404)
    expect((await request(server, "GET", "/v1/chats", { token })).body.chats).toEqual([])
  })

  it("rotates refresh tokens; a reused one revokes the whole session", async () => {
    const login = await request(server, "POST", "/v1/auth/login", { body: { login: "admin", password: "a long password 1" } })
    const r1 = login.body.refresh_token
    const second = await request(server, "POST", "/v1/auth/refresh", { body: { refresh_token: r1 } })
    expect(second.status).toBe(200)
    expect(second.body.refresh_token).not.toBe(r1)
    const third = await request(server, "POST", "/v1/auth/refresh", { body: { refresh_token: second.body.refresh_token } })
    expect(third.status).toBe(200)
    expect((await request(server, "GET", "/v1/me", { token: third.body.access_token })).status).toBe(200)
    const reuse = await request(server, "POST", "/v1/auth/refresh", { body: { refresh_token: r1 } })
    expect(reuse.status).toBe(401)
    expect(reuse.body.error.code).toBe("refresh_token_reused")
    // the family is revoked: its newest refresh token and its access tokens stop working
    expect((await request(server, "POST", "/v1/auth/refresh", { body: { refresh_token: third.body.refresh_token } })).body.error.code).toBe("invalid_refresh_token")
    const me = await request(server, "GET", "/v1/me", { token: third.body.access_token })
    expect(me.status).toBe(401)
    expect(me.body.error.code).toBe("session_revoked")
  })

  it("refuses JWTs with alg none, a wrong key, or past their expiry; logout revokes at once", async () => {
    const login = await request(server, "POST", "/v1/auth/login", { body: { login: "admin", password: "a long password 1" } })
    const claims = Jose.decodeJwt(login.body.access_token)
    const none = new Jose.UnsecuredJWT({ ...claims }).encode()
    const wrongKey = await new Jose.SignJWT({ ...claims }).setProtectedHeader({ alg: "HS256" }).sign(new Uint8Array(32).fill(7))
    const { Redacted } = await import("effect")
    const key = Redacted.value(server.settings.jwtSecret)
    const expired = await new Jose.SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 }).setProtectedHeader({ alg: "HS256" }).sign(key)
    const hs512 = await new Jose.SignJWT({ ...claims }).setProtectedHeader({ alg: "HS512" }).sign(new Uint8Array(64).fill(1))
    for (const [token, code] of [[none, "invalid_token"], [wrongKey, "invalid_token"], [expired, "token_expired"], [hs512, "invalid_token"], ["garbage", "invalid_token"]] as const) {
      const res = await request(server, "GET", "/v1/me", { token })
      expect(res.status).toBe(401)
      expect(res.body.error.code).toBe(code)
    }
    expect((await request(server, "GET", "/v1/me")).body.error.code).toBe("unauthorized")
    expect((await request(server, "GET", "/v1/me", { token: login.body.access_token })).status).toBe(200)
    expect((await request(server, "POST", "/v1/auth/logout", { token: login.body.access_token })).status).toBe(204)
    expect((await request(server, "GET", "/v1/me", { token: login.body.access_token })).body.error.code).toBe("session_revoked")
  })

  it("cookie sessions need the CSRF token for unsafe methods", async () => {
    const login = await fetch(server.url + "/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ login: "admin", password: "a long password 1" }) })
    const setCookies = login.headers.getSetCookie()
    expect(setCookies.find((c) => c.startsWith("troupe_access="))).toMatch(/HttpOnly/i)
    expect(setCookies.find((c) => c.startsWith("troupe_access="))).toMatch(/SameSite=Strict/i)
    const jar = setCookies.map((c) => c.split(";")[0]).join("; ")
    const csrf = setCookies.find((c) => c.startsWith("troupe_csrf="))!.split(";")[0]!.split("=")[1]!
    expect((await request(server, "GET", "/v1/me", { headers: { cookie: jar } })).status).toBe(200)
    const without = await request(server, "POST", "/v1/chats", { headers: { cookie: jar }, body: {} })
    expect(without.status).toBe(403)
    expect(without.body.error.code).toBe("csrf_failed")
    expect((await request(server, "POST", "/v1/chats", { headers: { cookie: jar, "x-csrf-token": csrf }, body: {} })).status).toBe(201)
    // refreshing with the cookie: no body needed, CSRF token required
    expect((await request(server, "POST", "/v1/auth/refresh", { headers: { cookie: jar } })).body.error.code).toBe("csrf_failed")
    const refreshed = await request(server, "POST", "/v1/auth/refresh", { headers: { cookie: jar, "x-csrf-token": csrf } })
    expect(refreshed.status).toBe(200)
    expect(refreshed.headers.getSetCookie().some((c) => c.startsWith("troupe_refresh="))).toBe(true)
  })

  it("API keys: work like a JWT within their scopes, refuse account routes, and are refused beyond their spend cap", async () => {
    const ada = await request(server, "POST", "/v1/auth/login", { body: { login: "eve", password: "a long password 1" } })
    const token = ada.body.access_token
    const created = await request(server, "POST", "/v1/api_keys", { token, body: { name: "reader", scopes: ["read"] } })
    expect(created.status).toBe(201)
    const reader = created.body.key as string
    expect((await request(server, "GET", "/v1/api_keys", { token })).body.api_keys.map((k: { id: string }) => k.id)).toContain(created.body.id)
    expect((await request(server, "GET", "/v1/me", { token: reader })).status).toBe(200)
    expect((await request(server, "GET", "/v1/chats", { token: reader })).status).toBe(200)
    const write = await request(server, "POST", "/v1/chats", { token: reader, body: {} })
    expect(write.status).toBe(403)
    expect(write.body.error.code).toBe("insufficient_scope")
    const skill = await request(server, "POST", "/v1/apps/math/skills/calculate", { token: reader, body: { input: { expression: "1+1" } } })
    expect(skill.body.error.code).toBe("insufficient_scope")
    expect((await request(server, "POST", "/v1/api_keys", { token: reader, body: { name: "x", scopes: ["chats"] } })).body.error.code).toBe("session_required")
    const bad = await request(server, "POST", "/v1/api_keys", { token, body: { name: "x", scopes: ["everything"] } })
    expect(bad.status).toBe(400)
    expect(bad.body.error.details.issues[0].path).toMatch(/^scopes/)

    // a skills:text key with a cap of 1 credit: a priced skill is refused before it runs
    const capped = await request(server, "POST", "/v1/api_keys", { token, body: { name: "capped", scopes: ["skills:text"], spend_cap: 1 } })
    const apps = await request(server, "GET", "/v1/apps", { token: capped.body.key })
    expect(apps.status).toBe(200)
    expect(apps.body.apps.map((a: { id: string }) => a.id)).toEqual(expect.arrayContaining(["math", "text"]))
    const text = "Troupe is a platform. Mates use skills. Skills are sandboxed. Credits pay for them. Streams resume. ".repeat(20)
    const refused = await request(server, "POST", "/v1/apps/text/skills/summarize", { token: capped.body.key, body: { input: { text } } })
    expect(refused.status).toBe(402)
    expect(refused.body.error.code).toBe("spend_cap_exceeded")
    // the key's scope is one app only
    expect((await request(server, "POST", "/v1/apps/math/skills/calculate", { token: capped.body.key, body: { input: { expression: "1+1" } } })).body.error.code).toBe("insufficient_scope")
    // with a session: the skill runs, the actual price is charged and nothing stays reserved
    const before = (await request(server, "GET", "/v1/credits", { token })).body.available
    const run = await request(server, "POST", "/v1/apps/text/skills/summarize", { token, body: { input: { text } } })
    expect(run.status, JSON.stringify(run.body)).toBe(200)
    expect(run.body.result.summary.length).toBeGreaterThan(0)
    expect(run.body.credits_charged).toBeGreaterThan(0)
    const after = (await request(server, "GET", "/v1/credits", { token })).body
    expect(after).toEqual({ available: before - run.body.credits_charged, reserved: 0 })
    // the key list shows what a capped key has spent against its cap (null without a cap)
    const budget = await request(server, "POST", "/v1/api_keys", { token, body: { name: "budget", scopes: ["skills:text"], spend_cap: 1000 } })
    expect(budget.body).toMatchObject({ spend_cap: 1000, spent: 0 })
    const listed = async () => (await request(server, "GET", "/v1/api_keys", { token })).body.api_keys as Array<{ id: string; spent: number | null }>
    expect((await listed()).find((k) => k.id === budget.body.id)?.spent).toBe(0)
    expect((await listed()).find((k) => k.id === created.body.id)?.spent).toBeNull()
    const paid = await request(server, "POST", "/v1/apps/text/skills/summarize", { token: budget.body.key, body: { input: { text } } })
    expect(paid.status, JSON.stringify(paid.body)).toBe(200)
    expect(paid.body.credits_charged).toBeGreaterThan(0)
    expect((await listed()).find((k) => k.id === budget.body.id)?.spent).toBe(paid.body.credits_charged)
    // the ledger says what each charge was for: the skill, and the API key that spent
    type Row = { kind: string; bucket: string; amount: number; reason: string | null; skill: string | null; api_key_id: string | null }
    const rows = (await request(server, "GET", "/v1/credits/ledger?limit=50", { token })).body.entries as Array<Row>
    const settled = rows.filter((e) => e.kind === "settle" && e.bucket === "reserved" && e.reason === "skill text.summarize")
    expect(settled.map((e) => e.api_key_id)).toEqual([budget.body.id, null])
    expect(settled[0]).toMatchObject({ skill: "text.summarize" })
    expect(rows.filter((e) => e.api_key_id === budget.body.id).map((e) => e.kind).sort()).toEqual(["reserve", "reserve", "settle", "settle"])
    const free = await request(server, "POST", "/v1/apps/math/skills/calculate", { token, body: { input: { expression: "6*7" } } })
    expect(free.body).toMatchObject({ credits_charged: 0 })
    const invalid = await request(server, "POST", "/v1/apps/math/skills/calculate", { token, body: { input: { nope: 1 } } })
    expect(invalid.status).toBe(400)
    expect(invalid.body.error.code).toBe("invalid_input")
    expect((await request(server, "POST", "/v1/apps/nope/skills/x", { token, body: { input: {} } })).body.error.code).toBe("app_not_found")

    // a chats key with a cap of 0: the turn is refused its credits and says so on the stream
    const chatsKey = (await request(server, "POST", "/v1/api_keys", { token, body: { name: "bot", scopes: ["chats"], spend_cap: 0 } })).body.key as string
    const botChat = await request(server, "POST", "/v1/chats", { token: chatsKey, body: { title: "bot" } })
    expect(botChat.status).toBe(201)
    expect((await request(server, "POST", `/v1/chats/${botChat.body.id}/messages`, { token: chatsKey, body: { client_message_id: "b1", text: "hi" } })).status).toBe(202)
    const botEvents = await readEvents(server, `/v1/chats/${botChat.body.id}/events`, chatsKey, (es) => es.some((e) => e.event === "error" || e.event === "done"))
    expect(botEvents.events.at(-1)).toMatchObject({ event: "error", data: { code: "insufficient_credits" } })
    expect(botEvents.events.at(-1)!.data.message).toContain("api_key:")
    // a chats key without a cap: the turn is charged, and its ledger rows name the chat and the key
    const uncapped = await request(server, "POST", "/v1/api_keys", { token, body: { name: "free bot", scopes: ["chats"] } })
    const freeChat = await request(server, "POST", "/v1/chats", { token: uncapped.body.key, body: { title: "free" } })
    expect((await request(server, "POST", `/v1/chats/${freeChat.body.id}/messages`, { token: uncapped.body.key, body: { client_message_id: "f1", text: "hi" } })).status).toBe(202)
    const freeEvents = await readEvents(server, `/v1/chats/${freeChat.body.id}/events`, uncapped.body.key, (es) => es.some((e) => e.event === "error" || e.event === "done"))
    expect(freeEvents.events.at(-1)!.event).toBe("done")
    const turnRows = ((await request(server, "GET", "/v1/credits/ledger?limit=50", { token })).body.entries as Array<Row>)
      .filter((e) => e.reason === `turn in chat ${freeChat.body.id}`)
    expect(turnRows.map((e) => e.kind)).toContain("settle")
    expect(turnRows.every((e) => e.api_key_id === uncapped.body.id && e.skill === null)).toBe(true)

    // revoked: refused at once
    expect((await request(server, "DELETE", `/v1/api_keys/${created.body.id}`, { token })).status).toBe(204)
    const revoked = await request(server, "GET", "/v1/me", { token: reader })
    expect(revoked.status).toBe(401)
    expect(revoked.body.error.code).toBe("invalid_api_key")
  })

  it("limits brute-force logins per account with 429 and Retry-After (Redis)", async () => {
    const statuses: Array<number> = []
    let last: Awaited<ReturnType<typeof request>> | undefined
    for (let i = 0; i < 7; i++) {
      last = await request(server, "POST", "/v1/auth/login", { body: { login: "ada", password: `wrong password ${i}` } })
      statuses.push(last.status)
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401])
    expect(statuses.slice(5)).toEqual([429, 429])
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(last!.body.error.code).toBe("rate_limited")
    // even the right password is refused while limited
    expect((await request(server, "POST", "/v1/auth/login", { body: { login: "ada", password: "a long password 1" } })).status).toBe(429)
  })

  it("mates, the credit ledger, admin users and grants, and deleting an account", async () => {
    const admin = (await request(server, "POST", "/v1/auth/login", { body: { login: "admin", password: "a long password 1" } })).body.access_token
    const invite = await request(server, "POST", "/v1/admin/invites", { token: admin, body: { uses: 1 } })
    const zoe = await onboard(server, "zoe", invite.body.code)
    const token = zoe.access

    const mates = await request(server, "GET", "/v1/mates", { token })
    expect(mates.body.mates.map((m: { id: string; is_default: boolean }) => [m.id, m.is_default])).toEqual([["default", true]])
    const mate = await request(server, "POST", "/v1/mates", { token, body: { name: "Researcher", system_prompt: "Dig deep.", allowed_skills: ["text.summarize"] } })
    expect(mate.status).toBe(201)
    const patched = await request(server, "PATCH", `/v1/mates/${mate.body.id}`, { token, body: { model: "big" } })
    expect(patched.body).toMatchObject({ name: "Researcher", model: "big", allowed_skills: ["text.summarize"] })
    expect((await request(server, "DELETE", "/v1/mates/default", { token })).body.error.code).toBe("default_mate")
    const chat = await request(server, "POST", "/v1/chats", { token, body: { mate_id: mate.body.id } })
    expect(chat.body.mate_id).toBe(mate.body.id)
    expect((await request(server, "POST", "/v1/chats", { token, body: { mate_id: "nope" } })).body.error.code).toBe("mate_not_found")
    expect((await request(server, "DELETE", `/v1/mates/${mate.body.id}`, { token })).status).toBe(204)

    // admin: users, grants (idempotent with a key); others may not
    expect((await request(server, "GET", "/v1/admin/users", { token })).body.error.code).toBe("admin_only")
    expect((await request(server, "GET", "/v1/admin/health", { token })).body.error.code).toBe("admin_only")
    const users = await request(server, "GET", "/v1/admin/users?limit=100", { token: admin })
    expect(users.body.users.map((u: { username: string }) => u.username)).toContain("zoe")
    const before = (await request(server, "GET", "/v1/credits", { token })).body.available
    for (let i = 0; i < 2; i++) {
      const grant = await request(server, "POST", "/v1/admin/credits/grant", { token: admin, body: { user_id: zoe.userId, amount: 40, reason: "thanks", idempotency_key: "zoe-1" } })
      expect(grant.status).toBe(200)
    }
    expect((await request(server, "GET", "/v1/credits", { token })).body.available).toBe(before + 40)
    expect((await request(server, "POST", "/v1/admin/credits/grant", { token: admin, body: { user_id: "nobody", amount: 1, reason: "x" } })).body.error.code).toBe("user_not_found")
    const ledger = await request(server, "GET", "/v1/credits/ledger?limit=10", { token })
    expect(ledger.body.entries.some((e: { reason: string | null; amount: number }) => e.reason === "thanks" && e.amount === 40)).toBe(true)

    // deleting the account: its chats are gone, its tokens and login refused
    expect((await request(server, "DELETE", "/v1/me", { token })).status).toBe(204)
    expect((await request(server, "GET", "/v1/me", { token })).status).toBe(401)
    expect((await request(server, "GET", `/v1/chats/${chat.body.id}`, { token: admin })).status).toBe(404)
    expect((await request(server, "POST", "/v1/auth/login", { body: { login: "zoe", password: "a long password 1" } })).body.error.code).toBe("invalid_credentials")
  })

  it("answers bad input with 400 and field paths, malformed JSON with 400, big bodies with 413", async () => {
    const bad = await request(server, "POST", "/v1/auth/signup", { body: { email: "not-an-email", username: "a", password: "short" } })
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe("invalid_request")
    expect(bad.body.error.details.issues.map((i: { path: string }) => i.path)).toContain("email")
    const json = await request(server, "POST", "/v1/auth/login", { body: "{nope" })
    expect(json.status).toBe(400)
    expect(json.body.error.code).toBe("invalid_json")
    const big = await request(server, "POST", "/v1/auth/login", { body: { login: "x".repeat(300 * 1024), password: "y" } })
    expect(big.status).toBe(413)
    expect((await request(server, "GET", "/v1/nope")).status).toBe(404)
    const headers = (await request(server, "GET", "/v1/me")).headers
    expect(headers.get("x-request-id")).toBeTruthy()
    expect(headers.get("x-content-type-options")).toBe("nosniff")
  })

  it("serves the OpenAPI 3.1 document with every route, and the docs page", async () => {
    const doc = await request(server, "GET", "/v1/openapi.json")
    expect(doc.status).toBe(200)
    expect(doc.body.openapi).toMatch(/^3\.1/)
    const routes = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
    for (const r of [
      "POST /v1/auth/signup", "POST /v1/auth/verify_email", "POST /v1/auth/login", "POST /v1/auth/refresh", "POST /v1/auth/logout",
      "POST /v1/auth/logout_all", "GET /v1/me", "POST /v1/auth/2fa/setup", "POST /v1/auth/2fa/confirm", "POST /v1/api_keys", "GET /v1/api_keys",
      "DELETE /v1/api_keys/{id}", "POST /v1/chats", "GET /v1/chats", "GET /v1/chats/{id}", "POST /v1/chats/{id}/messages", "GET /v1/chats/{id}/events",
      "POST /v1/chats/{id}/cancel", "DELETE /v1/chats/{id}/messages/{message_id}", "DELETE /v1/chats/{id}", "PATCH /v1/chats/{id}", "POST /v1/chats/{id}/share",
      "GET /v1/mates", "POST /v1/mates", "PATCH /v1/mates/{id}", "DELETE /v1/mates/{id}", "GET /v1/credits", "GET /v1/credits/ledger",
      "POST /v1/admin/credits/grant", "POST /v1/admin/invites", "GET /v1/admin/users", "GET /v1/apps", "GET /v1/apps/{app}", "POST /v1/apps/{app}/skills/{skill}"
    ]) expect(routes).toContain(r)
    expect(JSON.stringify(doc.body)).not.toContain("HttpApiDecodeError")
    const docs = await fetch(server.url + "/docs")
    expect(docs.status).toBe(200)
    expect(await docs.text()).toContain("swagger")
  })
})
