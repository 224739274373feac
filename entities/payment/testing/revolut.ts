/**
 * A local stand-in for the part of the Revolut Merchant API that Troupe uses, over real HTTP, for
 * tests: `POST /api/orders`, `GET /api/orders/:id` and `POST /api/orders/:id/refund` (bearer key
 * and `Revolut-Api-Version` checked); and, as the buyer or Revolut would cause them, an order
 * completed, cancelled, refunded or a dispute lost — each producing the webhook body Revolut sends
 * (`{event, order_id, merchant_order_ext_ref}`), signed as Revolut documents
 * (`Revolut-Signature: v1=hex(HMAC-SHA256(secret, "v1.{Revolut-Request-Timestamp}.{body}"))`),
 * which the test delivers. A refund is what Revolut documents: a new order of `type: "refund"`
 * with `related_order_id` set to the refunded order, completed on its own (its `ORDER_COMPLETED`
 * names the refund order), and the original order's `refunded_amount` grows.
 */
import * as NodeCrypto from "node:crypto"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"

type Order = {
  id: string
  token: string
  type: "payment" | "refund"
  state: "pending" | "processing" | "authorised" | "completed" | "cancelled" | "failed"
  created_at: string
  updated_at: string
  amount: number
  outstanding_amount: number
  refunded_amount: number
  related_order_id?: string
  currency: string
  description: string | null
  capture_mode: "automatic"
  checkout_url: string
  merchant_order_data: { reference: string | null }
  metadata: Record<string, string>
  customer: { email?: string } | null
}

/** A webhook body. */
export interface RevolutWebhook {
  readonly event: string
  readonly order_id: string
  readonly merchant_order_ext_ref: string | null
}

/** Revolut's `v1=` signature of a body. */
export const signature = (secret: string, timestamp: string, body: string): string =>
  "v1=" + NodeCrypto.createHmac("sha256", secret).update(`v1.${timestamp}.${body}`).digest("hex")

/** A running stand-in. */
export interface RevolutStandIn {
  readonly url: string
  readonly apiKey: string
  readonly webhookSecret: string
  readonly requests: Array<{ readonly method: string; readonly path: string; readonly body: unknown; readonly version: string | undefined }>
  readonly order: (id: string) => Order | undefined
  /** The order whose reference is `reference` (our payment id). */
  readonly orderFor: (reference: string) => Order | undefined
  /** The buyer pays: the order completes; returns `ORDER_COMPLETED`. */
  readonly complete: (orderId: string) => RevolutWebhook
  /** The order is cancelled (abandoned checkout); returns `ORDER_CANCELLED`. */
  readonly cancel: (orderId: string) => RevolutWebhook
  /**
   * The merchant refunds `amount` (all that is left by default), as the dashboard or
   * `POST /api/orders/:id/refund` would: a completed refund order; returns its `ORDER_COMPLETED`.
   */
  readonly refund: (orderId: string, amount?: number) => RevolutWebhook
  /** The refund orders of an order. */
  readonly refundsOf: (orderId: string) => ReadonlyArray<Order>
  /** A chargeback the merchant lost; returns `DISPUTE_LOST`. */
  readonly disputeLost: (orderId: string) => RevolutWebhook & { readonly dispute_id: string }
  /** POST a body to a webhook URL, signed (or with `secret`/`timestamp` to forge or replay it). */
  readonly deliver: (url: string, body: unknown, options?: { readonly secret?: string; readonly timestamp?: number }) => Promise<{ readonly status: number; readonly body: string }>
  readonly close: () => Promise<void>
}

/** Start the stand-in on a free port of 127.0.0.1. */
export const start = async (options: { readonly apiKey?: string; readonly webhookSecret?: string } = {}): Promise<RevolutStandIn> => {
  const apiKey = options.apiKey ?? `sk_${NodeCrypto.randomBytes(16).toString("base64url")}`
  const webhookSecret = options.webhookSecret ?? `wsk_${NodeCrypto.randomBytes(16).toString("base64url")}`
  const orders = new Map<string, Order>()
  const requests: RevolutStandIn["requests"] = []
  let base = ""
  const json = (res: NodeHttp.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" })
    res.end(JSON.stringify(body))
  }
  const server = NodeHttp.createServer((req, res) => {
    let raw = ""
    req.on("data", (d: Buffer) => (raw += d.toString()))
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0]!
      let body: unknown = undefined
      try {
        body = raw.length > 0 ? JSON.parse(raw) : undefined
      } catch {
        return json(res, 400, { code: "bad_request", message: "Malformed JSON" })
      }
      const version = req.headers["revolut-api-version"] as string | undefined
      requests.push({ method: req.method ?? "", path, body, version })
      if (req.headers.authorization !== `Bearer ${apiKey}`) return json(res, 401, { code: "unauthenticated", message: "Authentication failed" })
      if (!version || !/^\d{4}-\d{2}-\d{2}$/.test(version)) return json(res, 400, { code: "bad_request", message: "Revolut-Api-Version header is required" })
      if (req.method === "POST" && path === "/api/orders") {
        const b = body as { amount?: unknown; currency?: unknown; description?: string; merchant_order_data?: { reference?: string }; metadata?: Record<string, string>; customer?: { email?: string } }
        if (typeof b?.amount !== "number" || !Number.isInteger(b.amount) || b.amount <= 0 || typeof b.currency !== "string" || !/^[A-Z]{3}$/.test(b.currency)) {
          return json(res, 422, { code: "validation_error", message: "amount and currency are required" })
        }
        const now = new Date().toISOString()
        const token = NodeCrypto.randomUUID()
        const order: Order = {
          id: NodeCrypto.randomUUID(),
          token,
          type: "payment",
          state: "pending",
          created_at: now,
          updated_at: now,
          amount: b.amount,
          outstanding_amount: b.amount,
          refunded_amount: 0,
          currency: b.currency,
          description: b.description ?? null,
          capture_mode: "automatic",
          checkout_url: `${base}/payment-link/${token}`,
          merchant_order_data: { reference: b.merchant_order_data?.reference ?? null },
          metadata: b.metadata ?? {},
          customer: b.customer ?? null
        }
        orders.set(order.id, order)
        return json(res, 201, order)
      }
      const r = /^\/api\/orders\/([\w-]+)\/refund$/.exec(path)
      if (req.method === "POST" && r) {
        const b = body as { amount?: unknown; currency?: unknown; merchant_order_data?: { reference?: string } } | undefined
        const o = orders.get(r[1]!)
        if (!o || o.type !== "payment") return json(res, 404, { code: "not_found", message: "Order not found" })
        if (o.state !== "completed") return json(res, 422, { code: "invalid_state", message: "Only completed orders can be refunded" })
        if (typeof b?.amount !== "number" || !Number.isInteger(b.amount) || b.amount <= 0 || b.amount > o.amount - o.refunded_amount || b.currency !== o.currency) {
          return json(res, 422, { code: "validation_error", message: "amount must be at most what is left to refund, in the order's currency" })
        }
        return json(res, 201, makeRefund(o, b.amount, b.merchant_order_data?.reference ?? null))
      }
      const m = /^\/api\/orders\/([\w-]+)$/.exec(path)
      if (req.method === "GET" && m) {
        const order = orders.get(m[1]!)
        return order ? json(res, 200, order) : json(res, 404, { code: "not_found", message: "Order not found" })
      }
      return json(res, 404, { code: "not_found", message: `No route ${req.method} ${path}` })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const orderOf = (id: string) => {
    const o = orders.get(id)
    if (!o) throw new Error(`no order ${id}`)
    return o
  }
  const makeRefund = (o: Order, amount: number, reference: string | null): Order => {
    const now = new Date().toISOString()
    const refund: Order = {
      ...o,
      id: NodeCrypto.randomUUID(),
      token: NodeCrypto.randomUUID(),
      type: "refund",
      state: "completed",
      created_at: now,
      updated_at: now,
      amount,
      outstanding_amount: 0,
      refunded_amount: 0,
      related_order_id: o.id,
      description: null,
      merchant_order_data: { reference },
      metadata: {}
    }
    orders.set(refund.id, refund)
    o.refunded_amount += amount
    o.updated_at = now
    return refund
  }
  const move = (id: string, state: Order["state"], event: string): RevolutWebhook => {
    const o = orderOf(id)
    o.state = state
    o.updated_at = new Date().toISOString()
    if (state === "completed") o.outstanding_amount = 0
    return { event, order_id: o.id, merchant_order_ext_ref: o.merchant_order_data.reference }
  }

  return {
    url: base,
    apiKey,
    webhookSecret,
    requests,
    order: (id) => orders.get(id),
    orderFor: (reference) => [...orders.values()].find((o) => o.type === "payment" && o.merchant_order_data.reference === reference),
    complete: (id) => move(id, "completed", "ORDER_COMPLETED"),
    cancel: (id) => move(id, "cancelled", "ORDER_CANCELLED"),
    refund: (id, amount) => {
      const o = orderOf(id)
      const refund = makeRefund(o, amount ?? o.amount - o.refunded_amount, null)
      return { event: "ORDER_COMPLETED", order_id: refund.id, merchant_order_ext_ref: refund.merchant_order_data.reference }
    },
    refundsOf: (id) => [...orders.values()].filter((o) => o.type === "refund" && o.related_order_id === id),
    disputeLost: (id) => {
      const o = orderOf(id)
      return { event: "DISPUTE_LOST", order_id: o.id, merchant_order_ext_ref: o.merchant_order_data.reference, dispute_id: NodeCrypto.randomUUID() }
    },
    deliver: async (url, payload, opts = {}) => {
      const body = JSON.stringify(payload)
      const timestamp = String(opts.timestamp ?? Date.now())
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "revolut-request-timestamp": timestamp, "revolut-signature": signature(opts.secret ?? webhookSecret, timestamp, body) },
        body,
        signal: AbortSignal.timeout(30_000)
      })
      return { status: response.status, body: await response.text() }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
