/**
 * Buying credits through Revolut with the production shape: one `troupe runner` (the payment
 * workflow, invoices, mail) and two `troupe gateway` processes on one Postgres, all configured
 * by the documented variables, against a local Revolut Merchant API stand-in and SMTP server.
 * The same signed webhook delivered five times at once through both gateways grants once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { pdfText } from "../entities/payment/testing/pdf.ts"
import * as Revolut from "../entities/payment/testing/revolut.ts"
import { randomMasterKey, startRunner } from "../runtime/testing/cluster.ts"
import { freePort, spawnTroupe, type Spawned, stop, waitFor } from "../runtime/testing/process.ts"
import { createTestDatabase, redisUrl } from "../runtime/testing/services.ts"
import { type MailCatcher, startMailCatcher } from "../runtime/testing/smtp.ts"
import { request } from "./testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let revolut: Revolut.RevolutStandIn
let smtp: MailCatcher
const procs: Array<Spawned> = []
const dirs: Array<string> = []
const gateways: Array<{ readonly url: string; readonly proc: Spawned }> = []
const jwtSecret = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")

const tempDir = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-pay-"))
  dirs.push(dir)
  return dir
}

const paymentEnv = () => ({
  TROUPE_PAYMENTS_PROVIDER: "revolut",
  REVOLUT_API_KEY: revolut.apiKey,
  REVOLUT_WEBHOOK_SECRET: revolut.webhookSecret,
  REVOLUT_API_BASE: revolut.url,
  SMTP_URL: smtp.url,
  TROUPE_SELLER_NAME: "Troupe Ltd",
  TROUPE_SELLER_ADDRESS: "1 High Street|London",
  TROUPE_INVOICE_PREFIX: "TRP",
  REDIS_URL: redisUrl(),
  REDIS_KEY_PREFIX: `troupe-payroles-${Date.now()}:`
})

const startGateway = async () => {
  const port = await freePort()
  const proc = spawnTroupe(["gateway"], {
    DATABASE_URL: db.url,
    TROUPE_JWT_SECRET: jwtSecret,
    TROUPE_SIGNUP: "open",
    TROUPE_PORT: String(port),
    TROUPE_HOST: "127.0.0.1",
    TROUPE_DATA_DIR: tempDir(),
    TROUPE_LOG_LEVEL: "warning",
    ...paymentEnv()
  })
  procs.push(proc)
  await waitFor(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 150_000 })
  gateways.push({ url: `http://127.0.0.1:${port}`, proc })
}

beforeAll(async () => {
  db = await createTestDatabase("payroles")
  revolut = await Revolut.start()
  smtp = await startMailCatcher()
  const runner = await startRunner({ databaseUrl: db.url, masterKey: randomMasterKey(), dataDir: tempDir(), env: paymentEnv() })
  procs.push(runner.proc)
  await Promise.all([startGateway(), startGateway()])
}, 300_000)
afterAll(async () => {
  await Promise.all(procs.map((p) => stop(p, "SIGKILL")))
  await revolut?.close()
  await smtp?.close()
  await db?.drop()
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

/** Sign up on `g`, verify with the mailed code, log in. */
const account = async (g: { readonly url: string }, name: string, invite?: string) => {
  const email = `${name}@example.com`
  const signup = await request(g, "POST", "/v1/auth/signup", { body: { email, username: name, password: "a long password 1", ...(invite ? { invite_code: invite } : {}) } })
  expect(signup.status, JSON.stringify(signup.body)).toBe(201)
  const mail = await smtp.waitFor((m) => (m.to && !Array.isArray(m.to) ? m.to.text : "").includes(email) && /verification code is \d{6}/.test(m.text ?? ""))
  const code = /verification code is (\d{6})/.exec(mail.text ?? "")![1]!
  expect((await request(g, "POST", "/v1/auth/verify_email", { body: { email, code } })).status).toBe(200)
  const login = await request(g, "POST", "/v1/auth/login", { body: { login: name, password: "a long password 1" } })
  expect(login.status).toBe(200)
  return { email, token: login.body.access_token as string }
}

describe("payments through Revolut on a runner and two gateways", () => {
  it("checkout → signed webhook 5× at once through both gateways → one grant → invoice by e-mail; forged, cancelled, dispute lost", async () => {
    const [a, b] = gateways as [typeof gateways[0], typeof gateways[0]]
    const invite = gateways.map((g) => /Admin invite code: (inv_\w+)/.exec(g.proc.stdout())?.[1]).find((c) => c !== undefined)!
    const admin = await account(a, "admin", invite)
    const pkg = await request(b, "POST", "/v1/admin/credit_packages", { token: admin.token, body: { name: "Team", credits: 5000, price_cents: 4800, currency: "GBP", vat_percent: 20 } })
    expect(pkg.status, JSON.stringify(pkg.body)).toBe(201)
    expect((await request(a, "GET", "/v1/credit_packages")).body.provider).toBe("revolut")

    const user = await account(b, "rita")
    const started = await request(a, "POST", "/v1/payments", { token: user.token, body: { package_id: pkg.body.id } })
    expect(started.status, JSON.stringify(started.body)).toBe(201)
    const paymentId = started.body.payment_id as string
    const created = revolut.requests.find((r) => r.method === "POST" && r.path === "/api/orders")!
    expect(created.version).toMatch(/^\d{4}-\d{2}-\d{2}$/)
    expect(created.body).toMatchObject({ amount: 4800, currency: "GBP", merchant_order_data: { reference: paymentId }, metadata: { payment_id: paymentId }, customer: { email: "rita@example.com" } })
    expect(started.body.checkout_url).toBe(revolut.orderFor(paymentId)!.checkout_url)
    const id = revolut.orderFor(paymentId)!.id

    // paid; the webhook arrives five times at once, through both gateways
    const completed = revolut.complete(id)
    const answers = await Promise.all([a, b, a, b, a].map((g) => revolut.deliver(`${g.url}/v1/payments/webhook/revolut`, completed)))
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
    expect((await request(b, "GET", "/v1/credits", { token: user.token })).body).toEqual({ available: 100 + 5000, reserved: 0 })
    const ledger = await request(a, "GET", "/v1/credits/ledger", { token: user.token })
    expect(ledger.body.entries.filter((e: { key: string }) => e.key.includes(`payment:revolut:${id}`))).toHaveLength(1)
    const paid = await request(b, "GET", `/v1/payments/${paymentId}`, { token: user.token })
    expect(paid.body).toMatchObject({ status: "credited", invoice_number: `TRP-${new Date().getUTCFullYear()}-000001` })

    const mail = await smtp.waitFor((m) => m.subject?.includes(paid.body.invoice_number) ?? false)
    const text = await pdfText(new Uint8Array(mail.attachments.find((x) => x.contentType === "application/pdf")!.content))
    expect(text).toContain("Troupe Ltd")
    expect(text).toMatch(/Net\s+40\.00 GBP/)
    expect(text).toMatch(/VAT 20%\s+8\.00 GBP/)
    expect(text).toMatch(/Total \(gross\)\s+48\.00 GBP/)
    expect(text).toContain(`Payment: ${paymentId}`)
    expect(smtp.mails.filter((m) => m.subject?.includes(paid.body.invoice_number))).toHaveLength(1)

    // forged and replayed signatures: 400, nothing changes
    expect((await revolut.deliver(`${b.url}/v1/payments/webhook/revolut`, completed, { secret: "wsk_forged" })).status).toBe(400)
    expect((await revolut.deliver(`${b.url}/v1/payments/webhook/revolut`, completed, { timestamp: Date.now() - 10 * 60_000 })).status).toBe(400)
    expect((await fetch(`${a.url}/v1/payments/webhook/stripe`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(404)

    // an abandoned checkout: cancelled, no credits
    const second = await request(b, "POST", "/v1/payments", { token: user.token, body: { package_id: pkg.body.id } })
    const secondId = second.body.payment_id as string
    expect((await revolut.deliver(`${a.url}/v1/payments/webhook/revolut`, revolut.cancel(findOrder(secondId)))).status).toBe(200)
    expect((await request(a, "GET", `/v1/payments/${secondId}`, { token: user.token })).body).toMatchObject({ status: "expired", failure_reason: "order_cancelled" })

    // a lost chargeback takes the credits back
    expect((await revolut.deliver(`${b.url}/v1/payments/webhook/revolut`, revolut.disputeLost(id))).status).toBe(200)
    expect((await request(a, "GET", `/v1/payments/${paymentId}`, { token: user.token })).body).toMatchObject({ status: "refunded", credits_reversed: 5000 })
    expect((await request(b, "GET", "/v1/credits", { token: user.token })).body).toEqual({ available: 100, reserved: 0 })
  }, 120_000)
})

/** The stand-in's order of a payment. */
const findOrder = (paymentId: string): string => revolut.orderFor(paymentId)!.id
