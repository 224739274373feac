/**
 * Password reset and e-mail change (issue 22, point 3) over real HTTP on Postgres: the link is
 * mailed (read from the outbox), works once for 30 minutes and revokes every session; unknown
 * addresses get the same answer; mails per address are capped; a new e-mail address takes effect
 * only with the code mailed to it, and the old address is told.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import Pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { onboard } from "../testing/flows.ts"
import { request, startServer, verificationCode } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"
import { mailsTo, waitForMails } from "./mail.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
const publicUrl = "https://troupe.example.org"

beforeAll(async () => {
  db = await createTestDatabase("reset")
  server = await startServer({
    databaseUrl: db.url,
    settings: {
      signup: { _tag: "Open" },
      publicUrl: Option.some(publicUrl),
      rateLimits: {
        perIp: { points: 100_000, duration: Duration.seconds(60) },
        perUser: { points: 100_000, duration: Duration.seconds(60) },
        auth: { points: 10_000, duration: Duration.seconds(60) },
        loginFailures: { points: 10, duration: Duration.minutes(15) },
        mailPerAddress: { points: 4, duration: Duration.hours(1) }
      }
    }
  })
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

const tokenOf = (text: string): string => {
  const m = new RegExp(`${publicUrl.replace(/[.]/g, "\\.")}/reset\\?token=([^\\s]+)`).exec(text)
  if (!m) throw new Error(`no reset link in: ${text}`)
  return decodeURIComponent(m[1]!)
}

const askReset = async (email: string) => {
  const r = await request(server, "POST", "/v1/auth/password_reset", { body: { email } })
  expect(r.status).toBe(202)
  return r.body
}

describe("password reset", () => {
  it("mails a single-use link that sets the password and revokes every session and refresh token; unknown addresses get the same answer", async () => {
    const alice = await onboard(server, "alice")
    const other = await request(server, "POST", "/v1/auth/login", { body: { login: "alice", password: "a long password 1" } })
    expect(other.status).toBe(200)

    const known = await askReset(alice.email)
    const unknown = await askReset("nobody@example.com")
    expect(unknown).toEqual(known)
    const mails = await waitForMails(server.dataDir, alice.email, 2)
    const reset = mails.filter((m) => m.subject.includes("Reset"))
    expect(reset).toHaveLength(1)
    const token = tokenOf(reset[0]!.text)
    expect(await mailsTo(server.dataDir, "nobody@example.com")).toHaveLength(0)

    const weak = await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token, password: "short" } })
    expect(weak.status).toBe(400)
    const done = await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token, password: "a brand new password" } })
    expect(done.status, JSON.stringify(done.body)).toBe(200)
    expect(done.body.revoked_sessions).toBe(2)

    // every session is gone: access tokens and refresh tokens
    for (const access of [alice.access, other.body.access_token]) {
      const me = await request(server, "GET", "/v1/me", { token: access })
      expect(me.status).toBe(401)
      expect(me.body.error.code).toBe("session_revoked")
    }
    for (const refresh of [alice.refresh, other.body.refresh_token]) {
      const r = await request(server, "POST", "/v1/auth/refresh", { body: { refresh_token: refresh } })
      expect(r.status).toBe(401)
    }
    expect((await request(server, "POST", "/v1/auth/login", { body: { login: "alice", password: "a long password 1" } })).body.error.code).toBe("invalid_credentials")
    expect((await request(server, "POST", "/v1/auth/login", { body: { login: "alice", password: "a brand new password" } })).status).toBe(200)

    // the link works once
    const again = await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token, password: "yet another password" } })
    expect(again.status).toBe(400)
    expect(again.body.error.code).toBe("reset_token_used")
    const forged = await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token: `${alice.userId}.${"x".repeat(43)}`, password: "yet another password" } })
    expect(forged.body.error.code).toBe("reset_token_invalid")
    const garbage = await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token: "not a token", password: "yet another password" } })
    expect(garbage.status).toBe(400)
    expect(garbage.body.error.code).toBe("reset_token_invalid")
  }, 60_000)

  it("refuses an expired link, spends the older links with the one used, and caps the mails per address", async () => {
    const bob = await onboard(server, "bobby")
    await askReset(bob.email)
    await askReset(bob.email.toUpperCase())
    const links = (await waitForMails(server.dataDir, bob.email, 3)).filter((m) => m.subject.includes("Reset")).map((m) => tokenOf(m.text))
    expect(links).toHaveLength(2)
    expect(new Set(links).size).toBe(2)

    // 30 minutes later (the database's clock moved on for the first link)
    const client = new Pg.Client({ connectionString: db.url })
    await client.connect()
    await client.query(`UPDATE user_reset_tokens SET expires_at = now() - interval '1 second', created_at = now() - interval '31 minutes'
                        WHERE user_id = $1 AND created_at = (SELECT min(created_at) FROM user_reset_tokens WHERE user_id = $1)`, [bob.userId])
    await client.end()
    const expired = await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token: links[0], password: "bob's new password" } })
    expect(expired.status).toBe(400)
    expect(expired.body.error.code).toBe("reset_token_expired")

    await askReset(bob.email)
    const third = (await waitForMails(server.dataDir, bob.email, 4)).filter((m) => m.subject.includes("Reset")).map((m) => tokenOf(m.text))
    expect(third).toHaveLength(3)
    expect((await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token: third[2], password: "bob's new password" } })).status).toBe(200)
    // the second link was never used, but the one used after it spent it
    expect((await request(server, "POST", "/v1/auth/password_reset/confirm", { body: { token: links[1], password: "bob's other password" } })).body.error.code).toBe("reset_token_used")

    // the cap (4 an hour here): still 202, but nothing more is mailed
    await askReset(bob.email)
    await askReset(bob.email)
    await askReset(bob.email)
    await new Promise((r) => setTimeout(r, 500))
    const all = (await waitForMails(server.dataDir, bob.email, 5)).filter((m) => m.subject.includes("Reset"))
    expect(all).toHaveLength(4)
  }, 60_000)
})

describe("e-mail change", () => {
  it("takes effect only with the code mailed to the new address, and tells the old one", async () => {
    const carol = await onboard(server, "carol")
    await onboard(server, "dave")
    const wrongPassword = await request(server, "POST", "/v1/me/email", { token: carol.access, body: { email: "carol@new.example.com", password: "not my password" } })
    expect(wrongPassword.status).toBe(401)
    expect(wrongPassword.body.error.code).toBe("invalid_credentials")
    const taken = await request(server, "POST", "/v1/me/email", { token: carol.access, body: { email: "DAVE@example.com", password: "a long password 1" } })
    expect(taken.status).toBe(409)
    expect(taken.body.error.code).toBe("email_taken")

    const begun = await request(server, "POST", "/v1/me/email", { token: carol.access, body: { email: "carol@new.example.com", password: "a long password 1" } })
    expect(begun.status, JSON.stringify(begun.body)).toBe(202)
    expect(begun.body).toEqual({ pending_email: "carol@new.example.com", confirmation: "sent" })
    // nothing changed yet
    expect((await request(server, "GET", "/v1/me", { token: carol.access })).body.email).toBe(carol.email)
    const code = verificationCode(server.dataDir, "carol@new.example.com")
    const wrong = await request(server, "POST", "/v1/me/email/confirm", { token: carol.access, body: { code: code === "000000" ? "111111" : "000000" } })
    expect(wrong.status).toBe(400)
    expect(wrong.body.error.code).toBe("invalid_code")

    const confirmed = await request(server, "POST", "/v1/me/email/confirm", { token: carol.access, body: { code } })
    expect(confirmed.status, JSON.stringify(confirmed.body)).toBe(200)
    expect(confirmed.body.email).toBe("carol@new.example.com")
    expect(confirmed.body.email_verified).toBe(true)
    const told = (await mailsTo(server.dataDir, carol.email)).filter((m) => m.subject.includes("changed"))
    expect(told).toHaveLength(1)
    expect(told[0]!.text).toContain("carol@new.example.com")
    // the code is spent, and the new address signs in
    expect((await request(server, "POST", "/v1/me/email/confirm", { token: carol.access, body: { code } })).body.error.details.reason).toBe("none")
    expect((await request(server, "POST", "/v1/auth/login", { body: { login: "carol@new.example.com", password: "a long password 1" } })).status).toBe(200)
    expect((await request(server, "POST", "/v1/auth/login", { body: { login: carol.email, password: "a long password 1" } })).status).toBe(401)
  }, 60_000)
})
