/**
 * Single sign-on with OpenID Connect (issue 22, point 2): two real OpenID providers
 * (`oidc-provider`, started here on 127.0.0.1) and the whole redirect flow through a cookie jar:
 * the first login creates the account (role from the groups claim), the next one finds it, an
 * existing account is linked only when the provider says the e-mail is verified; a wrong `state`,
 * an answer from another issuer (a mix-up), an unverified e-mail trying to link and a domain
 * outside the allowed ones are each refused with their own code; SSO can be the only way in.
 */
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeHttp from "node:http"
import Provider from "oidc-provider"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../runtime/testing/process.ts"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { onboard } from "../testing/flows.ts"
import { request, startServer } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"
import type { OidcProvider } from "../Config.ts"
import { browse, CookieJar, visit } from "./browser.ts"

const accounts: Record<string, Record<string, unknown>> = {
  "ivy-1": { email: "ivy@example.com", email_verified: true, preferred_username: "ivy", name: "Ivy", groups: ["staff", "troupe-admins"] },
  "kim-1": { email: "kim@example.com", email_verified: true, preferred_username: "kim", groups: ["staff"] },
  "judy-unverified": { email: "judy@example.com", email_verified: false, preferred_username: "judy" },
  "judy-verified": { email: "judy@example.com", email_verified: true, preferred_username: "judy" },
  "mallory-1": { email: "mallory@elsewhere.test", email_verified: true }
}

const idps: Array<NodeHttp.Server> = []
const startIdp = async (clientId: string, secret: string, redirectUris: ReadonlyArray<string>) => {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: secret, redirect_uris: [...redirectUris], response_types: ["code"], grant_types: ["authorization_code"] }],
    findAccount: async (_ctx, id) => (accounts[id] ? { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) } : undefined),
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["preferred_username", "name"], groups: ["groups"] },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ["a test cookie key"] },
    pkce: { required: () => true }
  })
  const server = NodeHttp.createServer(provider.callback())
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  idps.push(server)
  return issuer
}

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
let base: string
let issuerA: string
let issuerB: string

beforeAll(async () => {
  db = await createTestDatabase("oidc")
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  const callback = (id: string) => `${base}/v1/auth/oidc/${id}/callback`
  issuerA = await startIdp("troupe-a", "secret-a", [callback("acme")])
  // the other provider lets its client come back to acme's callback too: a mix-up attack's setting
  issuerB = await startIdp("troupe-b", "secret-b", [callback("other"), callback("acme")])
  const providers: Array<OidcProvider> = [
    {
      id: "acme", name: "Acme SSO", issuer: issuerA, clientId: "troupe-a", clientSecret: Redacted.make("secret-a"), scopes: ["openid", "email", "profile", "groups"],
      roleClaim: "groups", adminValues: ["troupe-admins"], allowedDomains: ["example.com"]
    },
    {
      id: "other", name: "Other", issuer: issuerB, clientId: "troupe-b", clientSecret: Redacted.make("secret-b"), scopes: ["openid", "email"],
      roleClaim: undefined, adminValues: [], allowedDomains: []
    }
  ]
  // on the port of TROUPE_PUBLIC_URL (the callback address comes from it)
  const started = await startServer({
    databaseUrl: db.url,
    env: { TROUPE_PORT: String(port) },
    settings: { signup: { _tag: "Open" }, publicUrl: Option.some(base), oidcProviders: providers }
  })
  server = { ...started, url: base }
}, 120_000)
afterAll(async () => {
  await server?.close()
  await Promise.all(idps.map((s) => new Promise((r) => s.close(r))))
  await db?.drop()
})

const isCallback = (url: URL) => url.href.startsWith(`${base}/v1/auth/oidc/`) && url.pathname.endsWith("/callback")

/** Click "sign in with <provider>" as `account`: the browser stops before it reaches Troupe's callback. */
const toCallback = async (jar: CookieJar, provider: string, account: string, returnTo = "/chats") => {
  const start = new URL(`${base}/v1/auth/oidc/${provider}/start?return_to=${encodeURIComponent(returnTo)}`)
  const { url } = await browse(jar, start, account, isCallback)
  expect(isCallback(url), url.href).toBe(true)
  return url
}

const signIn = async (provider: string, account: string) => {
  const jar = new CookieJar()
  const callback = await toCallback(jar, provider, account)
  const response = await visit(jar, callback)
  return { jar, response, body: response.status === 302 ? undefined : await response.json() }
}

/** GET /v1/me with the session cookies of a jar. */
const me = async (jar: CookieJar) => {
  const url = new URL(`${base}/v1/me`)
  const response = await visit(jar, url)
  return { status: response.status, body: await response.json() }
}

describe("single sign-on with OpenID Connect", () => {
  it("lists the providers, creates the account at the first login with the role of the groups claim, and finds it at the next", async () => {
    const listed = await request(server, "GET", "/v1/auth/oidc/providers")
    expect(listed.body).toEqual({
      providers: [{ id: "acme", name: "Acme SSO", start_url: "/v1/auth/oidc/acme/start" }, { id: "other", name: "Other", start_url: "/v1/auth/oidc/other/start" }],
      sso_only: false
    })
    const first = await signIn("acme", "ivy-1")
    expect(first.response.status, JSON.stringify(first.body)).toBe(302)
    expect(first.response.headers.get("location")).toBe("/chats")
    const ivy = await me(first.jar)
    expect(ivy.status).toBe(200)
    expect(ivy.body).toMatchObject({ email: "ivy@example.com", username: "ivy", role: "admin", email_verified: true })
    // the login's cookie is gone; the session's are set
    expect(first.jar.get(new URL(base), "troupe_oidc")).toBeUndefined()
    expect(first.jar.get(new URL(base), "troupe_refresh")).toBeDefined()

    const again = await signIn("acme", "ivy-1")
    expect(again.response.status).toBe(302)
    expect((await me(again.jar)).body.id).toBe(ivy.body.id)
    const kim = await signIn("acme", "kim-1")
    expect((await me(kim.jar)).body).toMatchObject({ username: "kim", role: "user" })
  }, 60_000)

  it("links an existing account only when the provider says the e-mail is verified", async () => {
    const judy = await onboard(server, "judy")
    const unverified = await signIn("acme", "judy-unverified")
    expect(unverified.response.status).toBe(403)
    expect(unverified.body.error.code).toBe("oidc_email_unverified")
    expect(unverified.jar.get(new URL(base), "troupe_access")).toBeUndefined()

    const verified = await signIn("acme", "judy-verified")
    expect(verified.response.status).toBe(302)
    expect((await me(verified.jar)).body).toMatchObject({ id: judy.userId, username: "judy", role: "user" })
    // the password still works too (SSO is not the only way in here)
    expect((await request(server, "POST", "/v1/auth/login", { body: { login: "judy", password: "a long password 1" } })).status).toBe(200)
  }, 60_000)

  it("refuses a wrong state, an answer from another issuer, a login from another browser and a domain outside the allowed ones", async () => {
    // the state of the answer is not the login's
    const jar = new CookieJar()
    const callback = await toCallback(jar, "acme", "kim-1")
    const tampered = new URL(callback)
    tampered.searchParams.set("state", "not-the-state")
    const wrongState = await visit(jar, tampered)
    expect(wrongState.status).toBe(400)
    expect((await wrongState.json()).error.code).toBe("oidc_state_mismatch")

    // the right answer in another browser (without the login's cookie)
    const stranger = await toCallback(new CookieJar(), "acme", "kim-1")
    const elsewhere = await visit(new CookieJar(), stranger)
    expect(elsewhere.status).toBe(400)
    expect((await elsewhere.json()).error.code).toBe("oidc_state_mismatch")

    // mix-up: the login started at acme, but another provider answers on acme's callback
    const mixJar = new CookieJar()
    const start = await visit(mixJar, new URL(`${base}/v1/auth/oidc/acme/start`))
    expect(start.status).toBe(302)
    const toA = new URL(start.headers.get("location")!)
    expect(toA.origin).toBe(issuerA)
    expect(toA.searchParams.get("code_challenge_method")).toBe("S256")
    expect(toA.searchParams.get("nonce")).toBeTruthy()
    const toB = new URL(`${issuerB}${toA.pathname}`)
    for (const [k, v] of toA.searchParams) toB.searchParams.set(k, v)
    toB.searchParams.set("client_id", "troupe-b")
    toB.searchParams.set("scope", "openid email")
    const { url: answer } = await browse(mixJar, toB, "kim-1", isCallback)
    expect(answer.searchParams.get("iss")).toBe(issuerB)
    const mixed = await visit(mixJar, answer)
    expect(mixed.status, JSON.stringify(await mixed.clone().json())).toBe(400)
    expect((await mixed.json()).error.code).toBe("oidc_wrong_issuer")

    const outside = await signIn("acme", "mallory-1")
    expect(outside.response.status).toBe(403)
    expect(outside.body.error.code).toBe("oidc_domain_not_allowed")
    // the other provider allows any domain
    const other = await signIn("other", "mallory-1")
    expect(other.response.status).toBe(302)
    expect((await me(other.jar)).body.email).toBe("mallory@elsewhere.test")

    expect((await request(server, "GET", "/v1/auth/oidc/nope/start")).body.error.code).toBe("oidc_provider_not_found")
  }, 60_000)
})

describe("SSO only", () => {
  it("refuses passwords, signup and password reset when single sign-on is the only way in", async () => {
    const sso = await startServer({ databaseUrl: db.url, settings: { signup: { _tag: "Open" }, ssoOnly: true } })
    try {
      const login = await request(sso, "POST", "/v1/auth/login", { body: { login: "judy", password: "a long password 1" } })
      expect(login.status).toBe(403)
      expect(login.body.error.code).toBe("sso_only")
      const signup = await request(sso, "POST", "/v1/auth/signup", { body: { email: "new@example.com", username: "newbie", password: "a long password 1" } })
      expect(signup.body.error.code).toBe("sso_only")
      expect((await request(sso, "POST", "/v1/auth/password_reset", { body: { email: "judy@example.com" } })).body.error.code).toBe("sso_only")
      expect((await request(sso, "GET", "/v1/auth/oidc/providers")).body.sso_only).toBe(true)
    } finally {
      await sso.close()
    }
  }, 60_000)
})
