/**
 * A local stand-in for the part of Stripe's API that Troupe uses, over real HTTP, for tests:
 * `POST /v1/checkout/sessions` (form-encoded as the SDK sends it, bearer key checked,
 * `Idempotency-Key` honoured), `GET /v1/checkout/sessions/:id`, `GET /v1/payment_intents/:id`; and, as the dashboard or the
 * buyer would cause them, a session completed, expired or refunded — each producing the event
 * Stripe would send, signed as Stripe documents (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret,
 * "{t}.{body}")`), which the test delivers (once, late, several times, concurrently).
 */
import * as NodeCrypto from "node:crypto"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"

/** A Stripe event as sent to webhooks. */
export interface StripeEvent {
  readonly id: string
  readonly object: "event"
  readonly type: string
  readonly created: number
  readonly api_version: string
  readonly livemode: false
  readonly pending_webhooks: number
  readonly request: { readonly id: null; readonly idempotency_key: null }
  readonly data: { readonly object: Record<string, unknown> }
}

type Session = {
  id: string
  object: "checkout.session"
  mode: string
  status: "open" | "complete" | "expired"
  payment_status: "unpaid" | "paid"
  amount_total: number
  amount_subtotal: number
  currency: string
  client_reference_id: string | null
  metadata: Record<string, string>
  customer_email: string | null
  payment_intent: string | null
  success_url: string
  cancel_url: string | null
  url: string | null
  expires_at: number
  created: number
  livemode: false
}

type Charge = {
  id: string
  object: "charge"
  amount: number
  amount_captured: number
  amount_refunded: number
  currency: string
  payment_intent: string
  refunded: boolean
  paid: true
  status: "succeeded"
  metadata: Record<string, string>
  created: number
}

/** Decode a form body with Stripe's bracket notation (`a[b][0][c]=x`) into nested objects and arrays. */
export const decodeForm = (body: string): Record<string, unknown> => {
  const root: Record<string, unknown> = {}
  for (const [key, value] of new URLSearchParams(body)) {
    const path = key.replace(/\]/g, "").split("[")
    let node: Record<string, unknown> | Array<unknown> = root
    path.forEach((part, i) => {
      const last = i === path.length - 1
      const container = node as Record<string, unknown>
      if (last) container[part] = value
      else {
        if (container[part] === undefined) container[part] = /^\d+$/.test(path[i + 1]!) ? [] : {}
        node = container[part] as Record<string, unknown>
      }
    })
  }
  return root
}

const random = (prefix: string) => `${prefix}_test_${NodeCrypto.randomBytes(12).toString("hex")}`

/** The `Stripe-Signature` header for a body. */
export const signature = (secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string =>
  `t=${timestamp},v1=${NodeCrypto.createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`

/** A running stand-in. */
export interface StripeStandIn {
  readonly url: string
  readonly secretKey: string
  readonly webhookSecret: string
  /** Every API request received (method, path, decoded body). */
  readonly requests: Array<{ readonly method: string; readonly path: string; readonly body: Record<string, unknown> }>
  readonly session: (id: string) => Session | undefined
  /** The buyer pays: the session completes; returns `checkout.session.completed`. */
  readonly complete: (sessionId: string) => StripeEvent
  /** The session times out; returns `checkout.session.expired`. */
  readonly expire: (sessionId: string) => StripeEvent
  /** A refund of `amount` (default: all that is left); returns `charge.refunded`. */
  readonly refund: (sessionId: string, amount?: number) => StripeEvent
  /** POST an event to a webhook URL, signed (or signed with `secret` to forge it). */
  readonly deliver: (url: string, event: StripeEvent, options?: { readonly secret?: string; readonly timestamp?: number }) => Promise<{ readonly status: number; readonly body: string }>
  readonly close: () => Promise<void>
}

/** Start the stand-in on a free port of 127.0.0.1. */
export const start = async (options: { readonly secretKey?: string; readonly webhookSecret?: string } = {}): Promise<StripeStandIn> => {
  const secretKey = options.secretKey ?? `sk_test_${NodeCrypto.randomBytes(12).toString("hex")}`
  const webhookSecret = options.webhookSecret ?? `whsec_${NodeCrypto.randomBytes(18).toString("base64url")}`
  const sessions = new Map<string, Session>()
  const intents = new Map<string, { metadata: Record<string, string> }>()
  const charges = new Map<string, Charge>()
  const idempotent = new Map<string, string>()
  const requests: StripeStandIn["requests"] = []
  let base = ""

  const json = (res: NodeHttp.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json", "request-id": random("req") })
    res.end(JSON.stringify(body))
  }
  const error = (res: NodeHttp.ServerResponse, status: number, message: string, extra: Record<string, unknown> = {}) =>
    json(res, status, { error: { type: "invalid_request_error", message, ...extra } })

  const server = NodeHttp.createServer((req, res) => {
    let raw = ""
    req.on("data", (d: Buffer) => (raw += d.toString()))
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0]!
      const body = decodeForm(raw)
      requests.push({ method: req.method ?? "", path, body })
      if (req.headers.authorization !== `Bearer ${secretKey}`) return error(res, 401, "Invalid API Key provided")
      if (req.method === "POST" && path === "/v1/checkout/sessions") {
        const key = req.headers["idempotency-key"]
        if (typeof key === "string" && idempotent.has(key)) return json(res, 200, sessions.get(idempotent.get(key)!))
        const items = body["line_items"] as Array<{ quantity?: string; price_data?: { currency?: string; unit_amount?: string } }> | undefined
        const item = items?.[0]
        if (body["mode"] !== "payment" || !item?.price_data?.currency || !item.price_data.unit_amount || typeof body["success_url"] !== "string") {
          return error(res, 400, "Missing required param: mode, line_items[0][price_data] or success_url", { param: "line_items" })
        }
        const amount = Number(item.price_data.unit_amount) * Number(item.quantity ?? "1")
        const now = Math.floor(Date.now() / 1000)
        const session: Session = {
          id: random("cs"),
          object: "checkout.session",
          mode: "payment",
          status: "open",
          payment_status: "unpaid",
          amount_total: amount,
          amount_subtotal: amount,
          currency: item.price_data.currency,
          client_reference_id: (body["client_reference_id"] as string | undefined) ?? null,
          metadata: (body["metadata"] as Record<string, string> | undefined) ?? {},
          customer_email: (body["customer_email"] as string | undefined) ?? null,
          payment_intent: null,
          success_url: body["success_url"] as string,
          cancel_url: (body["cancel_url"] as string | undefined) ?? null,
          url: "",
          expires_at: now + 24 * 3600,
          created: now,
          livemode: false
        }
        session.url = `${base}/c/pay/${session.id}`
        sessions.set(session.id, session)
        const piData = body["payment_intent_data"] as { metadata?: Record<string, string> } | undefined
        intents.set(session.id, { metadata: piData?.metadata ?? {} })
        if (typeof key === "string") idempotent.set(key, session.id)
        return json(res, 200, session)
      }
      const pi = /^\/v1\/payment_intents\/([\w]+)$/.exec(path)
      if (req.method === "GET" && pi) {
        const session = [...sessions.values()].find((s) => s.payment_intent === pi[1])
        return session
          ? json(res, 200, { id: pi[1], object: "payment_intent", amount: session.amount_total, currency: session.currency, status: "succeeded", metadata: intents.get(session.id)!.metadata })
          : error(res, 404, `No such payment_intent: '${pi[1]}'`, { code: "resource_missing" })
      }
      const m = /^\/v1\/checkout\/sessions\/([\w]+)$/.exec(path)
      if (req.method === "GET" && m) {
        const session = sessions.get(m[1]!)
        return session ? json(res, 200, session) : error(res, 404, `No such checkout.session: '${m[1]}'`, { code: "resource_missing" })
      }
      return error(res, 404, `Unrecognized request URL (${req.method}: ${path})`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const event = (type: string, object: Record<string, unknown>): StripeEvent => ({
    id: random("evt"),
    object: "event",
    type,
    created: Math.floor(Date.now() / 1000),
    api_version: "2026-10-28.endive",
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: { object: structuredClone(object) }
  })
  const sessionOf = (id: string) => {
    const s = sessions.get(id)
    if (!s) throw new Error(`no session ${id}`)
    return s
  }
  const chargeOf = (s: Session) => [...charges.values()].find((c) => c.payment_intent === s.payment_intent)

  return {
    url: base,
    secretKey,
    webhookSecret,
    requests,
    session: (id) => sessions.get(id),
    complete: (id) => {
      const s = sessionOf(id)
      if (s.status !== "complete") {
        s.status = "complete"
        s.payment_status = "paid"
        s.payment_intent = random("pi")
        s.url = null
        const charge: Charge = {
          id: random("ch"),
          object: "charge",
          amount: s.amount_total,
          amount_captured: s.amount_total,
          amount_refunded: 0,
          currency: s.currency,
          payment_intent: s.payment_intent,
          refunded: false,
          paid: true,
          status: "succeeded",
          // what the PaymentIntent carried; events below look payments up by the intent anyway
          metadata: {},
          created: Math.floor(Date.now() / 1000)
        }
        charges.set(charge.id, charge)
      }
      return event("checkout.session.completed", s)
    },
    expire: (id) => {
      const s = sessionOf(id)
      if (s.status === "open") {
        s.status = "expired"
        s.url = null
      }
      return event("checkout.session.expired", s)
    },
    refund: (id, amount) => {
      const s = sessionOf(id)
      const charge = chargeOf(s)
      if (!charge) throw new Error(`session ${id} was not paid`)
      charge.amount_refunded = Math.min(charge.amount, charge.amount_refunded + (amount ?? charge.amount - charge.amount_refunded))
      charge.refunded = charge.amount_refunded === charge.amount
      return event("charge.refunded", charge)
    },
    deliver: async (url, e, opts = {}) => {
      const body = JSON.stringify(e, null, 2)
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": signature(opts.secret ?? webhookSecret, body, opts.timestamp), "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)" },
        body,
        signal: AbortSignal.timeout(30_000)
      })
      return { status: response.status, body: await response.text() }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
