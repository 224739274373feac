/**
 * Buying credits through Stripe, end to end over real HTTP: the server (`troupe start` in this
 * process, Postgres) talks to a local Stripe stand-in through the official SDK, the stand-in's
 * signed webhooks come back through the gateway, invoices go to a local SMTP server and their
 * PDF text is read back with PDF.js. Configuration is the documented environment variables.
 */
import Pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Stripe from "../entities/payment/testing/stripe.ts"
import { pdfText } from "../entities/payment/testing/pdf.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { type MailCatcher, startMailCatcher } from "../runtime/testing/smtp.ts"
import { onboard, readEvents } from "./testing/flows.ts"
import { initialInvite, request, startServer } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
let stripe: Stripe.StripeStandIn
let smtp: MailCatcher
let admin: Awaited<ReturnType<typeof onboard>>
let packageId: string
const year = new Date().getUTCFullYear()

beforeAll(async () => {
  db = await createTestDatabase("payments")
  stripe = await Stripe.start()
  smtp = await startMailCatcher()
  Object.assign(process.env, {
    TROUPE_PAYMENTS_PROVIDER: "stripe",
    STRIPE_SECRET_KEY: stripe.secretKey,
    STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
    STRIPE_API_BASE: stripe.url,
    SMTP_URL: smtp.url,
    TROUPE_MAIL_FROM: "Troupe Billing <billing@troupe.test>",
    TROUPE_SELLER_NAME: "Troupe Test GmbH",
    TROUPE_SELLER_ADDRESS: "Hauptstraße 1|10115 Berlin|Germany",
    TROUPE_SELLER_VAT_ID: "DE123456789",
    TROUPE_PAYMENTS_POLL_INTERVAL: "300 millis",
    TROUPE_PAYMENTS_POLL_AFTER: "1 second"
  })
  server = await startServer({ databaseUrl: db.url, settings: { startingCredits: 0 } })
  admin = await onboard(server, "admin", initialInvite(server.dataDir))
  const created = await request(server, "POST", "/v1/admin/credit_packages", {
    token: admin.access,
    body: { name: "Starter", credits: 1000, price_cents: 1190, currency: "eur", vat_percent: 19 }
  })
  expect(created.status, JSON.stringify(created.body)).toBe(201)
  packageId = created.body.id
}, 120_000)
afterAll(async () => {
  await server?.close()
  await stripe?.close()
  await smtp?.close()
  await db?.drop()
})

const webhook = () => `${server.url}/v1/payments/webhook/stripe`
const balance = async (token: string) => (await request(server, "GET", "/v1/credits", { token })).body as { available: number; reserved: number }
const payment = async (token: string, id: string) => (await request(server, "GET", `/v1/payments/${id}`, { token })).body
const buy = async (token: string, pkg = packageId) => {
  const started = await request(server, "POST", "/v1/payments", { token, body: { package_id: pkg } })
  expect(started.status, JSON.stringify(started.body)).toBe(201)
  const sessionId = /\/c\/pay\/(cs_test_\w+)$/.exec(started.body.checkout_url as string)![1]!
  return { paymentId: started.body.payment_id as string, sessionId, body: started.body }
}
const until = async <A>(f: () => Promise<A>, ok: (a: A) => boolean, timeoutMs = 15_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last = await f()
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100))
    last = await f()
  }
  return last
}

describe("payments through Stripe", () => {
  it("admins configure packages that everyone can list; others cannot change them", async () => {
    const listed = await request(server, "GET", "/v1/credit_packages")
    expect(listed.status).toBe(200)
    expect(listed.body.provider).toBe("stripe")
    expect(listed.body.packages).toEqual([expect.objectContaining({ id: packageId, name: "Starter", credits: 1000, price_cents: 1190, currency: "EUR", vat_percent: 19, net_cents: 1000, vat_cents: 190 })])
    const user = await onboard(server, "paula", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const refused = await request(server, "POST", "/v1/admin/credit_packages", { token: user.access, body: { name: "Free", credits: 1, price_cents: 1, currency: "EUR", vat_percent: 0 } })
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe("admin_only")
    const bad = await request(server, "POST", "/v1/admin/credit_packages", { token: admin.access, body: { name: "Bad", credits: 0, price_cents: 100, currency: "EURO", vat_percent: 19 } })
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe("invalid_request")

    const extra = await request(server, "POST", "/v1/admin/credit_packages", { token: admin.access, body: { name: "Extra", credits: 5, price_cents: 500, currency: "EUR", vat_percent: 7.7 } })
    const patched = await request(server, "PATCH", `/v1/admin/credit_packages/${extra.body.id}`, { token: admin.access, body: { price_cents: 600 } })
    expect(patched.body).toMatchObject({ price_cents: 600, vat_percent: 7.7, name: "Extra" })
    expect((await request(server, "DELETE", `/v1/admin/credit_packages/${extra.body.id}`, { token: admin.access })).status).toBe(204)
    expect((await request(server, "DELETE", `/v1/admin/credit_packages/${extra.body.id}`, { token: admin.access })).body.error.code).toBe("package_not_found")
    const buyGone = await request(server, "POST", "/v1/payments", { token: user.access, body: { package_id: extra.body.id } })
    expect(buyGone.status).toBe(404)
    expect(buyGone.body.error.code).toBe("package_not_found")
  })

  it("checkout → signed webhook → credits once → numbered invoice by e-mail and download", async () => {
    const user = await onboard(server, "ada", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const { paymentId, sessionId, body } = await buy(user.access)
    expect(body.payment).toMatchObject({ status: "pending", credits: 1000, gross_cents: 1190, net_cents: 1000, vat_cents: 190, currency: "EUR", provider: "stripe" })
    expect(body.checkout_url).toBe(`${stripe.url}/c/pay/${sessionId}`)
    // the payment's id travels to Stripe in metadata and client_reference_id
    const sent = stripe.requests.find((r) => r.path === "/v1/checkout/sessions" && r.method === "POST" && r.body["client_reference_id"] === paymentId)!
    expect(sent.body).toMatchObject({ mode: "payment", metadata: { payment_id: paymentId }, customer_email: "ada@example.com", payment_intent_data: { metadata: { payment_id: paymentId } } })
    expect((await payment(user.access, paymentId)).status).toBe("pending")
    expect(await balance(user.access)).toEqual({ available: 0, reserved: 0 })

    const completed = stripe.complete(sessionId)
    const delivered = await stripe.deliver(webhook(), completed)
    expect(delivered.status, delivered.body).toBe(200)
    const done = await payment(user.access, paymentId)
    expect(done).toMatchObject({ status: "credited", credits: 1000 })
    expect(done.invoice_number).toMatch(new RegExp(`^INV-${year}-\\d{6}$`))
    expect(await balance(user.access)).toEqual({ available: 1000, reserved: 0 })
    // the same webhook again (Stripe retries) changes nothing
    expect((await stripe.deliver(webhook(), completed)).status).toBe(200)
    expect(await balance(user.access)).toEqual({ available: 1000, reserved: 0 })
    const ledger = await request(server, "GET", "/v1/credits/ledger", { token: user.access })
    const grants = ledger.body.entries.filter((e: { kind: string }) => e.kind === "grant")
    expect(grants).toHaveLength(1)
    expect(grants[0].key).toContain(`payment:stripe:${stripe.session(sessionId)!.payment_intent}`)

    // the invoice mail, with the PDF
    const mail = await smtp.waitFor((m) => m.subject?.includes(done.invoice_number) ?? false)
    expect(mail.to && !Array.isArray(mail.to) ? mail.to.text : "").toContain("ada@example.com")
    expect(mail.from?.text).toContain("billing@troupe.test")
    const attachment = mail.attachments.find((a) => a.contentType === "application/pdf")!
    expect(attachment.filename).toBe(`${done.invoice_number}.pdf`)
    const text = await pdfText(new Uint8Array(attachment.content))
    expect(text).toContain(`Invoice number: ${done.invoice_number}`)
    expect(text).toContain("Troupe Test GmbH")
    expect(text).toContain("Hauptstraße 1")
    expect(text).toContain("VAT ID: DE123456789")
    expect(text).toContain("ada@example.com")
    expect(text).toContain(`Payment: ${paymentId}`)
    expect(text).toContain("Starter - 1000 credits")
    expect(text).toMatch(/Net\s+10\.00 EUR/)
    expect(text).toMatch(/VAT 19%\s+1\.90 EUR/)
    expect(text).toMatch(/Total \(gross\)\s+11\.90 EUR/)

    // the same invoice downloads; someone else's does not
    const download = await fetch(`${server.url}/v1/payments/${paymentId}/invoice`, { headers: { authorization: `Bearer ${user.access}` } })
    expect(download.status).toBe(200)
    expect(download.headers.get("content-type")).toBe("application/pdf")
    expect(download.headers.get("content-disposition")).toContain(`${done.invoice_number}.pdf`)
    expect(await pdfText(new Uint8Array(await download.arrayBuffer()))).toBe(text)
    expect((await request(server, "GET", `/v1/payments/${paymentId}/invoice`, { token: admin.access })).body.error.code).toBe("payment_not_found")
    expect((await request(server, "GET", `/v1/payments/${paymentId}`, { token: admin.access })).status).toBe(404)

    // stored encrypted: the blob holds no PDF
    const client = new Pg.Client({ connectionString: db.url })
    await client.connect()
    const { rows } = await client.query<{ blob_key: string }>("SELECT blob_key FROM invoices WHERE payment_id = $1", [paymentId])
    await client.end()
    const { readFileSync } = await import("node:fs")
    const stored = readFileSync(`${server.dataDir}/blobs/data/${rows[0]!.blob_key}`)
    expect(stored.includes(Buffer.from("%PDF"))).toBe(false)
    expect(stored.includes(Buffer.from(done.invoice_number))).toBe(false)

    const history = await request(server, "GET", "/v1/payments", { token: user.access })
    expect(history.body.payments.map((p: { payment_id: string }) => p.payment_id)).toEqual([paymentId])
  })

  it("the same webhook 5 times at once, and events out of order, grant once", async () => {
    const user = await onboard(server, "bob", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const first = await buy(user.access)
    const completed = stripe.complete(first.sessionId)
    const answers = await Promise.all(Array.from({ length: 5 }, () => stripe.deliver(webhook(), completed)))
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200])
    expect(await balance(user.access)).toEqual({ available: 1000, reserved: 0 })

    // a refund whose event overtakes the payment's: credited then reversed, whatever comes later
    const second = await buy(user.access)
    const paid = stripe.complete(second.sessionId)
    const refunded = stripe.refund(second.sessionId)
    expect((await stripe.deliver(webhook(), refunded)).status).toBe(200)
    expect(await payment(user.access, second.paymentId)).toMatchObject({ status: "refunded", refunded_cents: 1190, credits_reversed: 1000 })
    expect((await stripe.deliver(webhook(), paid)).status).toBe(200)
    expect((await stripe.deliver(webhook(), stripe.expire(second.sessionId))).status).toBe(200)
    expect(await payment(user.access, second.paymentId)).toMatchObject({ status: "refunded" })
    expect(await balance(user.access)).toEqual({ available: 1000, reserved: 0 })
    const kinds = (await request(server, "GET", "/v1/credits/ledger", { token: user.access })).body.entries.map((e: { kind: string }) => e.kind)
    expect(kinds.filter((k: string) => k === "grant")).toHaveLength(2)
    expect(kinds.filter((k: string) => k === "reverse")).toHaveLength(1)
  })

  it("a forged or stale signature is refused with 400 and changes nothing", async () => {
    const user = await onboard(server, "eve", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const { paymentId, sessionId } = await buy(user.access)
    // an event claiming the session was paid; at Stripe it was not (so the poller, asking Stripe, finds nothing either)
    const completed: Stripe.StripeEvent = {
      id: "evt_forged",
      object: "event",
      type: "checkout.session.completed",
      created: Math.floor(Date.now() / 1000),
      api_version: "2026-10-28.endive",
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      data: { object: { ...stripe.session(sessionId)!, status: "complete", payment_status: "paid", payment_intent: "pi_forged" } }
    }
    const forged = await stripe.deliver(webhook(), completed, { secret: "whsec_not_the_secret" })
    expect(forged.status).toBe(400)
    expect(JSON.parse(forged.body).error.code).toBe("invalid_signature")
    const stale = await stripe.deliver(webhook(), completed, { timestamp: Math.floor(Date.now() / 1000) - 3600 })
    expect(stale.status).toBe(400)
    const unsigned = await fetch(webhook(), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(completed) })
    expect(unsigned.status).toBe(400)
    // a provider this server does not use
    expect((await fetch(`${server.url}/v1/payments/webhook/revolut`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(404)
    const p = await payment(user.access, paymentId)
    expect(p.status).toBe("pending")
    expect(await balance(user.access)).toEqual({ available: 0, reserved: 0 })
  })

  it("an expired checkout grants nothing", async () => {
    const user = await onboard(server, "carl", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const { paymentId, sessionId } = await buy(user.access)
    expect((await stripe.deliver(webhook(), stripe.expire(sessionId))).status).toBe(200)
    expect(await payment(user.access, paymentId)).toMatchObject({ status: "expired", failure_reason: "checkout_expired", invoice_number: null })
    expect(await balance(user.access)).toEqual({ available: 0, reserved: 0 })
    expect((await request(server, "GET", `/v1/payments/${paymentId}/invoice`, { token: user.access })).body.error.code).toBe("invoice_not_found")
  })

  it("polling the provider recovers a webhook that never came", async () => {
    const user = await onboard(server, "dora", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const { paymentId, sessionId } = await buy(user.access)
    stripe.complete(sessionId) // paid at Stripe; the webhook is lost
    const p = await until(() => payment(user.access, paymentId), (b) => b.status === "credited")
    expect(p.status).toBe("credited")
    expect(await balance(user.access)).toEqual({ available: 1000, reserved: 0 })
    await smtp.waitFor((m) => m.subject?.includes(p.invoice_number) ?? false)
  })

  it("a refund takes the credits back: the balance goes negative and blocks new turns until topped up", async () => {
    const user = await onboard(server, "finn", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const small = await request(server, "POST", "/v1/admin/credit_packages", { token: admin.access, body: { name: "Tiny", credits: 10, price_cents: 119, currency: "EUR", vat_percent: 19 } })
    const { paymentId, sessionId } = await buy(user.access, small.body.id)
    expect((await stripe.deliver(webhook(), stripe.complete(sessionId))).status).toBe(200)
    expect(await balance(user.access)).toEqual({ available: 10, reserved: 0 })
    // spend 6 credits on a turn
    const chat = await request(server, "POST", "/v1/chats", { token: user.access, body: {} })
    const post = await request(server, "POST", `/v1/chats/${chat.body.id}/messages`, { token: user.access, body: { client_message_id: "m1", text: "x".repeat(5000) } })
    expect(post.status).toBe(202)
    await readEvents(server, `/v1/chats/${chat.body.id}/events`, user.access, (es) => es.some((e) => e.event === "done"))
    expect(await balance(user.access)).toEqual({ available: 4, reserved: 0 })

    expect((await stripe.deliver(webhook(), stripe.refund(sessionId))).status).toBe(200)
    expect(await payment(user.access, paymentId)).toMatchObject({ status: "refunded", credits_reversed: 10 })
    expect(await balance(user.access)).toEqual({ available: -6, reserved: 0 })
    const blocked = await request(server, "POST", `/v1/chats/${chat.body.id}/messages`, { token: user.access, body: { client_message_id: "m2", text: "hello" } })
    expect(blocked.status).toBe(202)
    const events = await readEvents(server, `/v1/chats/${chat.body.id}/events?after=${blocked.body.seq}`, user.access, (es) => es.some((e) => e.event === "done" || e.event === "error"))
    expect(events.events.at(-1)).toMatchObject({ event: "error", data: { code: "insufficient_credits" } })

    // topped up: turns run again
    const again = await buy(user.access)
    expect((await stripe.deliver(webhook(), stripe.complete(again.sessionId))).status).toBe(200)
    expect(await balance(user.access)).toEqual({ available: 994, reserved: 0 })
  })
})

describe("invoice numbers", () => {
  it("have no gaps and no duplicates when many payments are credited at once", async () => {
    const user = await onboard(server, "gina", (await request(server, "POST", "/v1/admin/invites", { token: admin.access, body: { uses: 1 } })).body.code)
    const bought = await Promise.all(Array.from({ length: 8 }, () => buy(user.access)))
    await Promise.all(bought.map((b) => stripe.deliver(webhook(), stripe.complete(b.sessionId))))
    const client = new Pg.Client({ connectionString: db.url })
    await client.connect()
    const { rows } = await client.query<{ seq: string; number: string }>("SELECT seq, number FROM invoices WHERE series = $1 ORDER BY seq", [String(year)])
    await client.end()
    const seqs = rows.map((r) => Number(r.seq))
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1))
    expect(new Set(rows.map((r) => r.number)).size).toBe(rows.length)
    expect(await balance(user.access)).toEqual({ available: 8000, reserved: 0 })
  })
})

