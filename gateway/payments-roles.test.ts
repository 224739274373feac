/**
 * Buying credits through Revolut with the production shape: one `troupe runner` (the payment
 * workflow, invoices, mail) and two `troupe gateway` processes on one Postgres, all configured
 * by the documented variables, against a local Revolut Merchant API stand-in and SMTP server.
 * The same signed webhook delivered five times at once through both gateways grants once; a
 * refund (Revolut's own refund order, related to ours) takes the credits back once, whether its
 * webhook comes twice or never (then the poller finds it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { pdfText } from "../entities/payment/testing/pdf.ts"
import * as Revolut from "../entities/payment/testing/revolut.ts"
import * as Stripe from "../entities/payment/testing/stripe.ts"
import { randomMasterKey, startRunner } from "../runtime/testing/cluster.ts"
import { freePort, spawnTroupe, type Spawned, stop, waitFor } from "../runtime/testing/process.ts"
import { createTestDatabase, redisUrl } from "../runtime/testing/services.ts"
import { type MailCatcher, startMailCatcher } from "../runtime/testing/smtp.ts"
import { request } from "./testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let revolut: Revolut.RevolutStandIn
/** Made by the first test, used by the next. */
let shop: { readonly adminToken: string; readonly packageId: string } | undefined
let smtp: MailCatcher
const procs: Array<Spawned> = []
const dirs: Array<string> = []
type Gateway = { readonly url: string; readonly proc: Spawned }
let gateways: Array<Gateway> = []
const jwtSecret = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")

const tempDir = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-pay-"))
  dirs.push(dir)
  return dir
}

const paymentEnv = (): Record<string, string> => ({
  TROUPE_PAYMENTS_PROVIDER: "revolut",
  REVOLUT_API_KEY: revolut.apiKey,
  REVOLUT_WEBHOOK_SECRET: revolut.webhookSecret,
  REVOLUT_API_BASE: revolut.url,
  ...commonEnv()
})

const commonEnv = (): Record<string, string> => ({
  SMTP_URL: smtp.url,
  TROUPE_SELLER_NAME: "Troupe Ltd",
  TROUPE_SELLER_ADDRESS: "1 High Street|London",
  TROUPE_INVOICE_PREFIX: "TRP",
  // the poller looks often, so lost webhooks are found within the test's waits
  TROUPE_PAYMENTS_POLL_INTERVAL: "300 millis",
  TROUPE_PAYMENTS_POLL_AFTER: "1 second",
  TROUPE_PAYMENTS_REFUND_POLL: "1 second",
  REDIS_URL: redisUrl(),
  REDIS_KEY_PREFIX: `troupe-payroles-${Date.now()}-${NodeCrypto.randomUUID()}:`
})

const startGateway = async (databaseUrl: string, env: Record<string, string>): Promise<Gateway> => {
  const port = await freePort()
  const proc = spawnTroupe(["gateway"], {
    DATABASE_URL: databaseUrl,
    TROUPE_JWT_SECRET: jwtSecret,
    TROUPE_SIGNUP: "open",
    TROUPE_PORT: String(port),
    TROUPE_HOST: "127.0.0.1",
    TROUPE_DATA_DIR: tempDir(),
    TROUPE_LOG_LEVEL: "warning",
    ...env
  })
  procs.push(proc)
  await waitFor(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 150_000 })
  return { url: `http://127.0.0.1:${port}`, proc }
}

/** A runner (the payment workflow, invoices, mail) and two gateways on one database. */
const startShop = async (databaseUrl: string, env: Record<string, string>): Promise<Array<Gateway>> => {
  const runner = await startRunner({ databaseUrl, masterKey: randomMasterKey(), dataDir: tempDir(), env })
  procs.push(runner.proc)
  return Promise.all([startGateway(databaseUrl, env), startGateway(databaseUrl, env)])
}

/** The admin invite a gateway printed when it created the database. */
const adminInvite = (shop: ReadonlyArray<Gateway>): string => shop.map((g) => /Admin invite code: (inv_\w+)/.exec(g.proc.stdout())?.[1]).find((c) => c !== undefined)!

beforeAll(async () => {
  db = await createTestDatabase("payroles")
  revolut = await Revolut.start()
  smtp = await startMailCatcher()
  gateways = await startShop(db.url, paymentEnv())
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
    const admin = await account(a, "admin", adminInvite(gateways))
    const pkg = await request(b, "POST", "/v1/admin/credit_packages", { token: admin.token, body: { name: "Team", credits: 5000, price_cents: 4800, currency: "GBP", vat_percent: 20 } })
    expect(pkg.status, JSON.stringify(pkg.body)).toBe(201)
    expect((await request(a, "GET", "/v1/credit_packages")).body.provider).toBe("revolut")
    shop = { adminToken: admin.token, packageId: pkg.body.id }

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

describe("Revolut refunds", () => {
  it("a refund order's webhook, delivered twice through both gateways, reverses once; a lost refund or payment webhook is found by polling", async () => {
    const [a, b] = gateways as [typeof gateways[0], typeof gateways[0]]
    const { packageId } = shop!
    const user = await account(a, "rex")
    const balance = async () => (await request(b, "GET", "/v1/credits", { token: user.token })).body
    const get = async (id: string) => (await request(a, "GET", `/v1/payments/${id}`, { token: user.token })).body
    const reversals = async () =>
      (await request(a, "GET", "/v1/credits/ledger", { token: user.token })).body.entries.filter((e: { kind: string }) => e.kind === "reverse")
    const buy = async () => {
      const started = await request(b, "POST", "/v1/payments", { token: user.token, body: { package_id: packageId } })
      expect(started.status, JSON.stringify(started.body)).toBe(201)
      return { paymentId: started.body.payment_id as string, orderId: findOrder(started.body.payment_id) }
    }

    // paid and credited (5000 credits for 48.00 GBP)
    const first = await buy()
    expect((await revolut.deliver(`${a.url}/v1/payments/webhook/revolut`, revolut.complete(first.orderId))).status).toBe(200)
    expect(await balance()).toEqual({ available: 100 + 5000, reserved: 0 })

    // a partial refund of 12.00: Revolut makes a refund order related to ours; its ORDER_COMPLETED names that order
    const partial = revolut.refund(first.orderId, 1200)
    const refundOrder = revolut.order(partial.order_id)!
    expect(refundOrder).toMatchObject({ type: "refund", related_order_id: first.orderId, state: "completed", amount: 1200 })
    expect(partial.order_id).not.toBe(first.orderId)
    const twice = await Promise.all([a, b].map((g) => revolut.deliver(`${g.url}/v1/payments/webhook/revolut`, partial)))
    expect(twice.map((r) => r.status)).toEqual([200, 200])
    expect(await get(first.paymentId)).toMatchObject({ status: "credited", refunded_cents: 1200, credits_reversed: 1250 })
    expect(await balance()).toEqual({ available: 100 + 5000 - 1250, reserved: 0 })
    expect(await reversals()).toHaveLength(1)
    // the same webhook again, later: nothing more
    expect((await revolut.deliver(`${b.url}/v1/payments/webhook/revolut`, partial)).status).toBe(200)
    expect(await reversals()).toHaveLength(1)

    // the rest refunded: all credits back, the balance may go below what the user had
    expect((await revolut.deliver(`${b.url}/v1/payments/webhook/revolut`, revolut.refund(first.orderId))).status).toBe(200)
    expect(await get(first.paymentId)).toMatchObject({ status: "refunded", refunded_cents: 4800, credits_reversed: 5000 })
    expect(await balance()).toEqual({ available: 100, reserved: 0 })
    expect(await reversals()).toHaveLength(2)

    // a payment whose webhook is lost is credited by polling
    const second = await buy()
    revolut.complete(second.orderId)
    expect((await until(() => get(second.paymentId), (p) => p.status === "credited")).status).toBe("credited")
    expect(await balance()).toEqual({ available: 100 + 5000, reserved: 0 })

    // and refunded at Revolut with the webhook lost: the poller sees the order's refunded amount
    revolut.refund(second.orderId)
    const found = await until(() => get(second.paymentId), (p) => p.status === "refunded")
    expect(found).toMatchObject({ status: "refunded", refunded_cents: 4800, credits_reversed: 5000 })
    expect(await balance()).toEqual({ available: 100, reserved: 0 })
    expect(await reversals()).toHaveLength(3)
  }, 120_000)
})

describe("payments through Stripe on a runner and two gateways", () => {
  let stripeDb: Awaited<ReturnType<typeof createTestDatabase>> | undefined
  let stripe: Stripe.StripeStandIn | undefined
  let shopGateways: Array<Gateway> = []
  let shopProcs: Array<Spawned> = []
  beforeAll(async () => {
    const first = procs.length
    stripeDb = await createTestDatabase("payroles_stripe")
    stripe = await Stripe.start()
    shopGateways = await startShop(stripeDb.url, {
      TROUPE_PAYMENTS_PROVIDER: "stripe",
      STRIPE_SECRET_KEY: stripe.secretKey,
      STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
      STRIPE_API_BASE: stripe.url,
      ...commonEnv(),
      TROUPE_INVOICE_PREFIX: "STR"
    })
    shopProcs = procs.splice(first)
  }, 300_000)
  afterAll(async () => {
    await Promise.all(shopProcs.map((p) => stop(p, "SIGKILL")))
    await stripe?.close()
    await stripeDb?.drop()
  })

  it("checkout → the signed webhook 5× at once through both gateways → one grant, one invoice mail", async () => {
    const [a, b] = shopGateways as [Gateway, Gateway]
    const admin = await account(a, "stella", adminInvite(shopGateways))
    const pkg = await request(a, "POST", "/v1/admin/credit_packages", { token: admin.token, body: { name: "Solo", credits: 700, price_cents: 1190, currency: "EUR", vat_percent: 19 } })
    expect(pkg.status, JSON.stringify(pkg.body)).toBe(201)
    const user = await account(b, "sam")
    const started = await request(b, "POST", "/v1/payments", { token: user.token, body: { package_id: pkg.body.id } })
    expect(started.status, JSON.stringify(started.body)).toBe(201)
    const paymentId = started.body.payment_id as string
    const sessionId = /\/c\/pay\/(cs_test_\w+)$/.exec(started.body.checkout_url as string)![1]!
    expect(stripe!.session(sessionId)).toMatchObject({ client_reference_id: paymentId, metadata: { payment_id: paymentId } })

    const completed = stripe!.complete(sessionId)
    const answers = await Promise.all([a, b, a, b, a].map((g) => stripe!.deliver(`${g.url}/v1/payments/webhook/stripe`, completed)))
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
    expect((await request(a, "GET", "/v1/credits", { token: user.token })).body).toEqual({ available: 100 + 700, reserved: 0 })
    const ledger = await request(b, "GET", "/v1/credits/ledger", { token: user.token })
    expect(ledger.body.entries.filter((e: { key: string }) => e.key.includes("payment:stripe:"))).toHaveLength(1)
    const paid = await request(a, "GET", `/v1/payments/${paymentId}`, { token: user.token })
    expect(paid.body).toMatchObject({ status: "credited", invoice_number: `STR-${new Date().getUTCFullYear()}-000001` })
    const mail = await smtp.waitFor((m) => m.subject?.includes(paid.body.invoice_number) ?? false)
    const text = await pdfText(new Uint8Array(mail.attachments.find((x) => x.contentType === "application/pdf")!.content))
    expect(text).toMatch(/Total \(gross\)\s+11\.90 EUR/)
    expect(smtp.mails.filter((m) => m.subject?.includes(paid.body.invoice_number))).toHaveLength(1)
    // a forged signature through either gateway: 400, nothing more
    expect((await stripe!.deliver(`${b.url}/v1/payments/webhook/stripe`, completed, { secret: "whsec_forged" })).status).toBe(400)
    expect((await request(b, "GET", "/v1/credits", { token: user.token })).body).toEqual({ available: 100 + 700, reserved: 0 })
  }, 120_000)
})

const until = async <A>(f: () => Promise<A>, ok: (a: A) => boolean, timeoutMs = 30_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last = await f()
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200))
    last = await f()
  }
  return last
}

/** The stand-in's order of a payment. */
const findOrder = (paymentId: string): string => revolut.orderFor(paymentId)!.id
