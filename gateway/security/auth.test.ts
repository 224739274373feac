/**
 * Security regression tests for authentication (issue 15): failed-login and TOTP limits cannot be
 * raced (finding 2), e-mail code attempts count per address across codes and resends are
 * throttled (6), a bad invite learns nothing about accounts and a lockout from elsewhere does not
 * keep the owner out (7). Each failed before its fix.
 */
import * as Duration from "effect/Duration"
import * as NodeFs from "node:fs"
import * as OTPAuth from "otpauth"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { outboxDir } from "../Mailer.ts"
import { onboard } from "../testing/flows.ts"
import { initialInvite, request, startServer, verificationCode } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
const password = "a long password 1"

beforeAll(async () => {
  db = await createTestDatabase("secauth")
  server = await startServer({
    databaseUrl: db.url,
    settings: {
      signup: { _tag: "Open" },
      // the client address from X-Forwarded-For, so one test can speak from many addresses
      trustProxy: true,
      rateLimits: {
        perIp: { points: 100_000, duration: Duration.seconds(60) },
        perUser: { points: 100_000, duration: Duration.seconds(60) },
        auth: { points: 100_000, duration: Duration.seconds(60) },
        loginFailures: { points: 10, duration: Duration.minutes(15) },
        loginAccountFailures: { points: 25, duration: Duration.hours(1) },
        emailCodeAttempts: { points: 10, duration: Duration.hours(1) },
        mailPerAddress: { points: 5, duration: Duration.hours(1) }
      }
    }
  })
  await onboard(server, "secadmin", initialInvite(server.dataDir))
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

const login = (body: Record<string, string>, from = "203.0.113.1") =>
  request(server, "POST", "/v1/auth/login", { body, headers: { "x-forwarded-for": from } })

/** Turn on two-factor authentication: a function giving a code the server takes next, and the backup codes. */
const enableTotp = async (access: string) => {
  const setup = await request(server, "POST", "/v1/auth/2fa/setup", { token: access })
  expect(setup.status).toBe(200)
  const totp = new OTPAuth.TOTP({ digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(setup.body.secret) })
  const confirmed = await request(server, "POST", "/v1/auth/2fa/confirm", { token: access, body: { code: totp.generate() } })
  expect(confirmed.status).toBe(200)
  // the next time step's code: within the allowed drift and after the step the confirmation used
  return { nextCode: () => totp.generate({ timestamp: Date.now() + 30_000 }), backupCodes: confirmed.body.backup_codes as Array<string> }
}

const tally = (replies: ReadonlyArray<{ status: number; body: any }>) => {
  const counts: Record<string, number> = {}
  for (const r of replies) {
    const key = r.body?.error?.code ?? String(r.status)
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

describe("finding 2: failed-login and TOTP limits cannot be raced", () => {
  it("checks at most 10 of 20 parallel wrong passwords; the rest get 429", async () => {
    await onboard(server, "racer")
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => login({ login: "racer", password: `wrong password ${i}` })))
    const counts = tally(replies)
    expect(counts.invalid_credentials).toBeLessThanOrEqual(10)
    expect(counts.invalid_credentials).toBeGreaterThan(0)
    expect(counts.rate_limited).toBe(20 - counts.invalid_credentials!)
    expect(counts.invalid_credentials! + counts.rate_limited!).toBe(20)
    // and the address stays limited, even with the right password
    expect((await login({ login: "racer", password })).status).toBe(429)
  }, 60_000)

  it("checks at most 10 of 20 parallel wrong TOTP codes with the right password", async () => {
    const user = await onboard(server, "racer2")
    await enableTotp(user.access)
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => login({ login: "racer2", password, totp_code: String(100000 + i * 37) }, "203.0.113.2"))
    )
    const counts = tally(replies)
    expect(counts.invalid_totp).toBeLessThanOrEqual(10)
    expect(counts.invalid_totp).toBeGreaterThan(0)
    expect(counts.rate_limited).toBe(20 - counts.invalid_totp!)
  }, 60_000)
})

describe("finding 6: e-mail codes", () => {
  it("counts code attempts per address across resent codes", async () => {
    const email = "mailcount@example.com"
    expect((await request(server, "POST", "/v1/auth/signup", { body: { email, username: "mailcount", password } })).status).toBe(201)
    const wrong = async () => {
      const code = verificationCode(server.dataDir, email)
      const guess = code === "000000" ? "000001" : "000000"
      return request(server, "POST", "/v1/auth/verify_email", { body: { email, code: guess } })
    }
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5; i++) expect((await wrong()).body.error.code).toBe("invalid_code")
      // a new code does not give new attempts
      expect((await request(server, "POST", "/v1/auth/resend_verification", { body: { email } })).status).toBe(202)
    }
    const right = await request(server, "POST", "/v1/auth/verify_email", { body: { email, code: verificationCode(server.dataDir, email) } })
    expect(right.status).toBe(429)
    expect(right.body.error.code).toBe("rate_limited")
    expect(Number(right.headers.get("retry-after"))).toBeGreaterThan(0)
  }, 60_000)

  it("checks at most 10 of 20 parallel wrong codes", async () => {
    const email = "mailrace@example.com"
    expect((await request(server, "POST", "/v1/auth/signup", { body: { email, username: "mailrace", password } })).status).toBe(201)
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => request(server, "POST", "/v1/auth/verify_email", { body: { email, code: String(100000 + i) } }))
    )
    const counts = tally(replies)
    expect(counts.invalid_code).toBeLessThanOrEqual(10)
    expect(counts.rate_limited).toBeGreaterThanOrEqual(10)
  }, 60_000)

  it("throttles resends per address, with or without an account", async () => {
    const email = "flooded@example.com"
    expect((await request(server, "POST", "/v1/auth/signup", { body: { email, username: "flooded", password } })).status).toBe(201)
    for (const address of [email, "nobody-here@example.com"]) {
      const statuses: Array<number> = []
      for (let i = 0; i < 8; i++) statuses.push((await request(server, "POST", "/v1/auth/resend_verification", { body: { email: address } })).status)
      expect(statuses).toEqual([202, 202, 202, 202, 202, 429, 429, 429])
    }
    // the signup's mail and five resends
    const mails = NodeFs.readdirSync(outboxDir(server.dataDir)).filter((f) =>
      NodeFs.readFileSync(`${outboxDir(server.dataDir)}/${f}`, "utf8").toLowerCase().includes(`to: ${email}`)
    )
    expect(mails.length).toBe(6)
  }, 60_000)
})

describe("finding 7: enumeration and lockout", () => {
  it("checks a signup's invite before saying an address is taken", async () => {
    await onboard(server, "known")
    const bad = await request(server, "POST", "/v1/auth/signup", { body: { email: "known@example.com", username: "someone", password, invite_code: "inv_not_a_real_code" } })
    expect(bad.status).toBe(403)
    expect(bad.body.error).toMatchObject({ code: "invite_invalid", details: { reason: "unknown" } })
    const fresh = await request(server, "POST", "/v1/auth/signup", { body: { email: "unknown@example.com", username: "someone", password, invite_code: "inv_not_a_real_code" } })
    expect(fresh.status).toBe(403)
    expect(fresh.body.error.code).toBe("invite_invalid")
  }, 60_000)

  it("keys failed logins on account and address: failures from one address do not lock the owner out of another", async () => {
    await onboard(server, "keyed")
    for (let i = 0; i < 12; i++) await login({ login: "keyed", password: `wrong ${i}` }, "198.51.100.7")
    expect((await login({ login: "keyed", password }, "198.51.100.7")).status).toBe(429)
    expect((await login({ login: "keyed", password }, "192.0.2.50")).status).toBe(200)
    // the address's limit holds whichever name the account is given
    expect((await login({ login: "keyed@example.com", password }, "198.51.100.7")).status).toBe(429)
  }, 60_000)

  it("a global lockout from other addresses refuses the password alone but lets a password with a second factor through", async () => {
    const owner = await onboard(server, "owner")
    const { nextCode, backupCodes } = await enableTotp(owner.access)
    // 3 addresses x 10 guesses: past the account's global limit (25)
    for (const from of ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => login({ login: "owner", password: `guess ${from} ${i}` }, from)))
    }
    // from a fresh address: the right password alone, or with a wrong code, is refused like any guess
    const alone = await login({ login: "owner", password }, "192.0.2.10")
    expect(alone.status).toBe(429)
    expect(alone.body.error.details).toMatchObject({ second_factor_accepted: true })
    const wrongCode = await login({ login: "owner", password, totp_code: "000000" === nextCode() ? "000001" : "000000" }, "192.0.2.10")
    expect(wrongCode.status).toBe(429)
    const wrongPassword = await login({ login: "owner", password: "not it at all", totp_code: nextCode() }, "192.0.2.11")
    expect(wrongPassword.status).toBe(429)
    // the owner, with the password and a TOTP code (or a backup code), gets in
    const ok = await login({ login: "owner", password, totp_code: nextCode() }, "192.0.2.12")
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
    expect((await request(server, "GET", "/v1/me", { token: ok.body.access_token })).body.username).toBe("owner")
    expect((await login({ login: "owner", password, totp_code: backupCodes[0]! }, "192.0.2.13")).status).toBe(200)
    // an account without a second factor stays locked for the password alone
    await onboard(server, "plain")
    for (const from of ["198.51.100.4", "198.51.100.5", "198.51.100.6"]) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => login({ login: "plain", password: `guess ${from} ${i}` }, from)))
    }
    expect((await login({ login: "plain", password }, "192.0.2.20")).status).toBe(429)
    expect((await login({ login: "plain", password, totp_code: "123456" }, "192.0.2.20")).status).toBe(429)
  }, 90_000)
})
