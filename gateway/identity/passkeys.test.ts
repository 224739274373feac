/**
 * Passkeys (issue 22, point 1) over real HTTP on Postgres, with a software authenticator built in
 * the test (gateway/identity/authenticator.ts: ES256 keys, attestation `none`): register one or
 * more, list and remove them, log in with a passkey alone or as the second factor next to the
 * password; a replayed response, a wrong origin, another challenge, a cloned authenticator and an
 * unknown or removed passkey are each refused with their own code.
 */
import * as Option from "effect/Option"
import * as OTPAuth from "otpauth"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { onboard } from "../testing/flows.ts"
import { request, startServer } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"
import { SoftAuthenticator } from "./authenticator.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
const origin = "https://troupe.example.org"

beforeAll(async () => {
  db = await createTestDatabase("passkeys")
  server = await startServer({ databaseUrl: db.url, settings: { signup: { _tag: "Open" }, publicUrl: Option.some(`${origin}/`) } })
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

const register = async (token: string, authenticator: SoftAuthenticator, name: string, at = origin) => {
  const options = await request(server, "POST", "/v1/me/passkeys/options", { token })
  expect(options.status, JSON.stringify(options.body)).toBe(200)
  const response = authenticator.create(options.body.options, at)
  const body = { challenge_id: options.body.challenge_id, name, response }
  return { options: options.body, body, reply: await request(server, "POST", "/v1/me/passkeys", { token, body }) }
}

const assertion = async (authenticator: SoftAuthenticator, at = origin, credentialId?: string) => {
  const options = await request(server, "POST", "/v1/auth/passkey/options")
  expect(options.status, JSON.stringify(options.body)).toBe(200)
  return { challenge_id: options.body.challenge_id as string, response: authenticator.get(options.body.options, at, credentialId) }
}

describe("passkeys", () => {
  it("registers passkeys for the relying party of TROUPE_PUBLIC_URL, lists them, and logs in with one alone", async () => {
    const user = await onboard(server, "erin")
    const phone = new SoftAuthenticator()
    const first = await register(user.access, phone, "Phone")
    expect(first.options.options.rp.id).toBe("troupe.example.org")
    expect(first.options.options.authenticatorSelection.residentKey).toBe("required")
    expect(first.reply.status, JSON.stringify(first.reply.body)).toBe(201)
    expect(first.reply.body).toMatchObject({ id: phone.ids()[0], name: "Phone", transports: ["internal"], last_used_at: null })
    // the same registration again: its challenge is spent
    const replayed = await request(server, "POST", "/v1/me/passkeys", { token: user.access, body: first.body })
    expect(replayed.status).toBe(400)
    expect(replayed.body.error.code).toBe("passkey_challenge_used")

    const key = new SoftAuthenticator()
    const second = await register(user.access, key, "Security key")
    expect(second.reply.status).toBe(201)
    // the options of a third registration exclude both
    const third = await request(server, "POST", "/v1/me/passkeys/options", { token: user.access })
    expect(third.body.options.excludeCredentials.map((c: { id: string }) => c.id).sort()).toEqual([...phone.ids(), ...key.ids()].sort())
    const list = await request(server, "GET", "/v1/me/passkeys", { token: user.access })
    expect(list.body.passkeys.map((p: { name: string }) => p.name)).toEqual(["Phone", "Security key"])

    // a passkey made on another site
    const elsewhere = await register(user.access, new SoftAuthenticator(), "Evil", "https://evil.example.org")
    expect(elsewhere.reply.status).toBe(400)
    expect(elsewhere.reply.body.error.code).toBe("passkey_wrong_origin")

    // log in with the passkey alone (discoverable: no login name sent)
    const answer = await assertion(phone)
    const login = await request(server, "POST", "/v1/auth/passkey/login", { body: answer })
    expect(login.status, JSON.stringify(login.body)).toBe(200)
    expect(login.body.user_id).toBe(user.userId)
    const me = await request(server, "GET", "/v1/me", { token: login.body.access_token })
    expect(me.body.username).toBe("erin")
    expect((await request(server, "POST", "/v1/auth/refresh", { body: { refresh_token: login.body.refresh_token } })).status).toBe(200)
    const used = (await request(server, "GET", "/v1/me/passkeys", { token: user.access })).body.passkeys.find((p: { name: string }) => p.name === "Phone")
    expect(used.last_used_at).not.toBeNull()
    expect((await request(server, "POST", "/v1/auth/passkey/login", { body: await assertion(key) })).status).toBe(200)
  }, 60_000)

  it("refuses a replayed assertion, another challenge, a wrong origin, a cloned authenticator and an unknown passkey, each with its own code", async () => {
    const user = await onboard(server, "frank")
    const phone = new SoftAuthenticator()
    expect((await register(user.access, phone, "Phone")).reply.status).toBe(201)

    const answer = await assertion(phone)
    expect((await request(server, "POST", "/v1/auth/passkey/login", { body: answer })).status).toBe(200)
    const replay = await request(server, "POST", "/v1/auth/passkey/login", { body: answer })
    expect(replay.status).toBe(400)
    expect(replay.body.error.code).toBe("passkey_challenge_used")
    // the same signed response with a fresh challenge id: it signed another challenge
    const fresh = await request(server, "POST", "/v1/auth/passkey/options")
    const swapped = await request(server, "POST", "/v1/auth/passkey/login", { body: { ...answer, challenge_id: fresh.body.challenge_id } })
    expect(swapped.status).toBe(400)
    expect(swapped.body.error.code).toBe("passkey_wrong_challenge")
    const unknownChallenge = await request(server, "POST", "/v1/auth/passkey/login", { body: { ...answer, challenge_id: "wnever-handed-out" } })
    expect(unknownChallenge.body.error.code).toBe("passkey_challenge_unknown")

    const phishing = await request(server, "POST", "/v1/auth/passkey/login", { body: await assertion(phone, "https://troupe.example.org.evil.example") })
    expect(phishing.status).toBe(400)
    expect(phishing.body.error.code).toBe("passkey_wrong_origin")

    // a copy of the authenticator made now falls behind once the original signs on
    const clone = phone.clone()
    expect((await request(server, "POST", "/v1/auth/passkey/login", { body: await assertion(phone) })).status).toBe(200)
    expect((await request(server, "POST", "/v1/auth/passkey/login", { body: await assertion(phone) })).status).toBe(200)
    const cloned = await request(server, "POST", "/v1/auth/passkey/login", { body: await assertion(clone) })
    expect(cloned.status).toBe(401)
    expect(cloned.body.error.code).toBe("passkey_cloned")

    const stranger = new SoftAuthenticator()
    stranger.create({ challenge: "x", rp: { id: "troupe.example.org", name: "Troupe" }, user: { id: Buffer.from(user.userId).toString("base64url"), name: "frank" } }, origin)
    const unknown = await request(server, "POST", "/v1/auth/passkey/login", { body: await assertion(stranger) })
    expect(unknown.status).toBe(401)
    expect(unknown.body.error.code).toBe("passkey_unknown")
    // a forged signature on a registered credential
    const forged = await assertion(phone)
    const bad = { ...forged, response: { ...forged.response, response: { ...forged.response.response, signature: Buffer.from("nope").toString("base64url") } } }
    const refused = await request(server, "POST", "/v1/auth/passkey/login", { body: bad })
    expect(refused.status).toBe(401)
    expect(refused.body.error.code).toBe("passkey_invalid")
  }, 60_000)

  it("is a second factor next to the password when 2FA is on, and a removed passkey logs in no more", async () => {
    const user = await onboard(server, "grace")
    const phone = new SoftAuthenticator()
    const { reply } = await register(user.access, phone, "Phone")
    const setup = await request(server, "POST", "/v1/auth/2fa/setup", { token: user.access })
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(setup.body.secret) })
    expect((await request(server, "POST", "/v1/auth/2fa/confirm", { token: user.access, body: { code: totp.generate() } })).status).toBe(200)

    const passwordOnly = await request(server, "POST", "/v1/auth/login", { body: { login: "grace", password: "a long password 1" } })
    expect(passwordOnly.body.error.code).toBe("totp_required")
    const withPasskey = await request(server, "POST", "/v1/auth/login", { body: { login: "grace", password: "a long password 1", passkey: await assertion(phone) } })
    expect(withPasskey.status, JSON.stringify(withPasskey.body)).toBe(200)
    const wrongPassword = await request(server, "POST", "/v1/auth/login", { body: { login: "grace", password: "not the password", passkey: await assertion(phone) } })
    expect(wrongPassword.body.error.code).toBe("invalid_credentials")
    // another account's passkey is no second factor of this one
    const other = await onboard(server, "heidi")
    const hers = new SoftAuthenticator()
    expect((await register(other.access, hers, "Hers")).reply.status).toBe(201)
    const foreign = await request(server, "POST", "/v1/auth/login", { body: { login: "grace", password: "a long password 1", passkey: await assertion(hers) } })
    expect(foreign.status).toBe(401)
    expect(foreign.body.error.code).toBe("passkey_unknown")

    const removed = await request(server, "DELETE", `/v1/me/passkeys/${reply.body.id}`, { token: user.access })
    expect(removed.status).toBe(204)
    expect((await request(server, "GET", "/v1/me/passkeys", { token: user.access })).body.passkeys).toEqual([])
    expect((await request(server, "DELETE", `/v1/me/passkeys/${reply.body.id}`, { token: user.access })).body.error.code).toBe("passkey_not_found")
    const gone = await request(server, "POST", "/v1/auth/passkey/login", { body: await assertion(phone) })
    expect(gone.status).toBe(401)
    expect(gone.body.error.code).toBe("passkey_unknown")
    // someone else cannot remove a passkey that is not theirs
    expect((await request(server, "DELETE", `/v1/me/passkeys/${hers.ids()[0]}`, { token: user.access })).status).toBe(404)
  }, 60_000)
})
