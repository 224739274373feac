/**
 * Revolut Business Merchant API: an order per payment (our payment id as the order's
 * `merchant_order_data.reference` and `metadata.payment_id`; the buyer pays on the order's
 * `checkout_url`), the order retrieved for its state. Webhooks carry only the event name and the
 * order (`{event, order_id, merchant_order_ext_ref}`) and are verified as Revolut documents:
 * `Revolut-Signature: v1=hex(HMAC-SHA256(secret, "v1.{Revolut-Request-Timestamp}.{raw body}"))`,
 * several signatures allowed during a secret rotation, the timestamp within 5 minutes. An order
 * event makes the workflow ask the API for the order's state, so events in any order are fine.
 *
 * Refunds, as Revolut documents them: a refund is a new order of `type: "refund"` whose
 * `related_order_id` is the order it refunds; it reaches `completed` asynchronously and its order
 * events (`ORDER_COMPLETED` …) name the refund order, not ours. The original order stays
 * `completed` and counts what was refunded in `refunded_amount`. So an event about a refund order
 * is read through its related order (our payment), and polling a paid order sees its refunds.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import { type ProviderFailed, ProviderState } from "./protocol.ts"
import type { PaymentProviderService, WebhookEvent } from "./provider.ts"
import { InvalidSignature, providerFailed } from "./provider.ts"

/** Revolut's settings. */
export interface RevolutSettings {
  readonly apiKey: Redacted.Redacted
  readonly webhookSecret: Redacted.Redacted
  /** `https://merchant.revolut.com` (production) or the sandbox; tests use a local stand-in. */
  readonly apiBase: string
}

/** The API version this client speaks. */
export const apiVersion = "2024-09-01"

/** How far a webhook's timestamp may be from now. */
export const tolerance = 5 * 60 * 1000

/** Minor units; the legacy API wrote amounts as `{value, currency}`. */
const Amount = Schema.Union(Schema.Int, Schema.Struct({ value: Schema.Int }).pipe(Schema.pluck("value")))

const Order = Schema.Struct({
  id: Schema.String,
  /** `payment`, `refund`, `chargeback`, … (absent on old orders: a payment). */
  type: Schema.optional(Schema.String),
  state: Schema.String,
  amount: Schema.optional(Schema.Int),
  /** What was refunded of a payment order so far. */
  refunded_amount: Schema.optional(Schema.NullOr(Amount)),
  /** A refund's (or chargeback's) original order. */
  related_order_id: Schema.optional(Schema.NullOr(Schema.String)),
  currency: Schema.optional(Schema.String),
  checkout_url: Schema.optional(Schema.String),
  merchant_order_data: Schema.optional(Schema.Struct({ reference: Schema.optional(Schema.NullOr(Schema.String)) })),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})
type Order = typeof Order.Type

const WebhookBody = Schema.Struct({
  event: Schema.String,
  order_id: Schema.optional(Schema.String),
  merchant_order_ext_ref: Schema.optional(Schema.NullOr(Schema.String)),
  dispute_id: Schema.optional(Schema.String)
})

/**
 * A payment order's state; `refund` is a refund order about it (the event that made us look),
 * counted when completed in case the original's `refunded_amount` lags behind.
 */
const orderState = (order: Order, refund?: Order): ProviderState => {
  const common = {
    providerPaymentId: order.id,
    ...(order.amount !== undefined ? { amountCents: order.amount } : {}),
    ...(order.currency ? { currency: order.currency.toUpperCase() } : {})
  }
  const refunded = Math.max(order.refunded_amount ?? 0, refund?.state === "completed" ? refund.amount ?? 0 : 0)
  if (order.state === "completed" && refunded > 0) return new ProviderState({ kind: "refunded", ...common, refundedCents: refunded, reason: "refunded" })
  switch (order.state) {
    case "completed":
      return new ProviderState({ kind: "paid", ...common })
    case "cancelled":
      return new ProviderState({ kind: "expired", ...common, reason: "order_cancelled" })
    case "failed":
      return new ProviderState({ kind: "failed", ...common, reason: "payment_failed" })
    default:
      return new ProviderState({ kind: "pending", ...common })
  }
}

/** `v1=` signatures of a body, as Revolut computes them. */
export const sign = (secret: string, timestamp: string, body: string): string =>
  "v1=" + NodeCrypto.createHmac("sha256", secret).update(`v1.${timestamp}.${body}`).digest("hex")

/** Order events; each names an order (ours, or a refund order whose related order is ours). */
const orderEvents = new Set(["ORDER_COMPLETED", "ORDER_AUTHORISED", "ORDER_CANCELLED", "ORDER_FAILED", "ORDER_PAYMENT_DECLINED", "ORDER_PAYMENT_FAILED"])

/** The Revolut provider. */
export const make = (settings: RevolutSettings, options: { readonly now?: () => number } = {}): PaymentProviderService => {
  const base = settings.apiBase.replace(/\/$/, "")
  const failed = providerFailed("revolut")
  const now = options.now ?? Date.now
  const call = (method: "GET" | "POST", path: string, body?: unknown) =>
    Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(`${base}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${Redacted.value(settings.apiKey)}`,
            "revolut-api-version": apiVersion,
            accept: "application/json",
            ...(body === undefined ? {} : { "content-type": "application/json" })
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.any([signal, AbortSignal.timeout(20_000)])
        })
        const text = await response.text()
        if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 300)}`)
        return JSON.parse(text) as unknown
      },
      catch: failed
    }).pipe(Effect.flatMap((json) => Effect.mapError(Schema.decodeUnknown(Order)(json), failed)))

  const getOrder = (id: string) => call("GET", `/api/orders/${encodeURIComponent(id)}`)
  /** The payment order an order is about (itself, or a refund's related order) and the refund. */
  const paymentOrder = (id: string): Effect.Effect<{ readonly order: Order; readonly refund?: Order | undefined }, ProviderFailed> =>
    Effect.flatMap(getOrder(id), (order) =>
      order.type === "refund" && order.related_order_id
        ? Effect.map(getOrder(order.related_order_id), (original) => ({ order: original, refund: order }))
        : Effect.succeed({ order }))

  return {
    name: "revolut",
    reportsRefunds: true,
    createCheckout: (request) =>
      call("POST", "/api/orders", {
        amount: request.amountCents,
        currency: request.currency.toUpperCase(),
        description: request.description,
        merchant_order_data: { reference: request.paymentId },
        metadata: { payment_id: request.paymentId, user_id: request.userId },
        ...(request.email ? { customer: { email: request.email } } : {}),
        redirect_url: `${request.returnUrl}${request.returnUrl.includes("?") ? "&" : "?"}payment_id=${request.paymentId}`
      }).pipe(
        Effect.flatMap((order) =>
          order.checkout_url
            ? Effect.succeed({ ref: order.id, url: order.checkout_url, expiresAt: null })
            : Effect.fail(failed(new Error(`order ${order.id} has no checkout_url`)))
        )
      ),
    retrieve: (ref) => Effect.map(paymentOrder(ref), ({ order, refund }) => orderState(order, refund)),
    paymentIdOf: (providerPaymentId) =>
      Effect.map(paymentOrder(providerPaymentId), ({ order }) => order.merchant_order_data?.reference ?? order.metadata?.["payment_id"] ?? null),
    verifyWebhook: (headers, body) =>
      Effect.gen(function*() {
        const invalid = (message: string) => new InvalidSignature({ provider: "revolut", message })
        const timestamp = headers["revolut-request-timestamp"]
        const signatures = headers["revolut-signature"]
        if (!timestamp || !signatures) return yield* invalid("missing Revolut-Signature or Revolut-Request-Timestamp header")
        if (!/^\d{1,16}$/.test(timestamp) || Math.abs(now() - Number(timestamp)) > tolerance) {
          return yield* invalid("Revolut-Request-Timestamp is not within 5 minutes of now")
        }
        const expected = Buffer.from(sign(Redacted.value(settings.webhookSecret), timestamp, body))
        const ok = signatures.split(",").some((s) => {
          const given = Buffer.from(s.trim())
          return given.length === expected.length && NodeCrypto.timingSafeEqual(given, expected)
        })
        if (!ok) return yield* invalid("no signature matches")
        const event = yield* Schema.decodeUnknown(Schema.parseJson(WebhookBody))(body).pipe(
          Effect.mapError(() => invalid("the signed body is not a Revolut webhook event"))
        )
        if (orderEvents.has(event.event) && event.order_id) {
          return {
            eventId: `${event.event}:${event.order_id}`,
            type: event.event,
            paymentId: event.merchant_order_ext_ref ?? null,
            ref: event.order_id,
            providerPaymentId: event.order_id,
            state: null
          } satisfies WebhookEvent
        }
        if (event.event === "DISPUTE_LOST" && event.order_id) {
          return {
            eventId: `${event.event}:${event.dispute_id ?? event.order_id}`,
            type: event.event,
            paymentId: event.merchant_order_ext_ref ?? null,
            ref: event.order_id,
            providerPaymentId: event.order_id,
            state: new ProviderState({ kind: "refunded", providerPaymentId: event.order_id, reason: "dispute_lost" })
          } satisfies WebhookEvent
        }
        return null
      })
  }
}
