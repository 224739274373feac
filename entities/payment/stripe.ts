/**
 * Stripe through its official SDK: a Checkout Session per payment (our payment id in
 * `client_reference_id` and `metadata.payment_id`, also on the PaymentIntent), webhooks verified
 * with the SDK's `Stripe-Signature` check (`t=…,v1=HMAC-SHA256(secret, "{t}.{body}")`, 5 minutes
 * tolerance), and the session retrieved when polling. `STRIPE_API_BASE` points the SDK elsewhere
 * (tests use a local stand-in speaking the same protocol).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import Stripe from "stripe"
import { ProviderState } from "./protocol.ts"
import type { PaymentProviderService, WebhookEvent } from "./provider.ts"
import { InvalidSignature, providerFailed } from "./provider.ts"

/** Stripe's settings. */
export interface StripeSettings {
  readonly secretKey: Redacted.Redacted
  readonly webhookSecret: Redacted.Redacted
  /** `https://api.stripe.com` unless pointed elsewhere. */
  readonly apiBase: string
}

const idOf = (value: string | { readonly id: string } | null | undefined): string | null =>
  value === null || value === undefined ? null : typeof value === "string" ? value : value.id

const sessionState = (session: Stripe.Checkout.Session): ProviderState => {
  const common = {
    ...(idOf(session.payment_intent) ? { providerPaymentId: idOf(session.payment_intent)! } : {}),
    ...(session.amount_total !== null ? { amountCents: session.amount_total } : {}),
    ...(session.currency ? { currency: session.currency.toUpperCase() } : {})
  }
  if (session.status === "complete" && session.payment_status === "paid") return new ProviderState({ kind: "paid", ...common })
  if (session.status === "expired") return new ProviderState({ kind: "expired", ...common, reason: "checkout_expired" })
  return new ProviderState({ kind: "pending", ...common })
}

const paymentIdOf = (metadata: Stripe.Metadata | null | undefined, reference?: string | null): string | null =>
  metadata?.["payment_id"] ?? reference ?? null

/** Read a verified event. */
const readEvent = (event: Stripe.Event): WebhookEvent | null => {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired": {
      const session = event.data.object
      const state = event.type === "checkout.session.async_payment_failed"
        ? new ProviderState({ kind: "failed", reason: "payment_failed" })
        : sessionState(session)
      return {
        eventId: event.id,
        type: event.type,
        paymentId: paymentIdOf(session.metadata, session.client_reference_id),
        ref: session.id,
        providerPaymentId: idOf(session.payment_intent),
        state
      }
    }
    case "charge.refunded": {
      const charge = event.data.object
      const providerPaymentId = idOf(charge.payment_intent)
      return {
        eventId: event.id,
        type: event.type,
        paymentId: paymentIdOf(charge.metadata),
        ref: null,
        providerPaymentId,
        state: new ProviderState({
          kind: "refunded",
          ...(providerPaymentId ? { providerPaymentId } : {}),
          amountCents: charge.amount,
          currency: charge.currency.toUpperCase(),
          refundedCents: charge.amount_refunded,
          reason: "refunded"
        })
      }
    }
    case "charge.dispute.closed": {
      const dispute = event.data.object
      if (dispute.status !== "lost") return null
      const providerPaymentId = idOf(dispute.payment_intent)
      return {
        eventId: event.id,
        type: event.type,
        paymentId: paymentIdOf(dispute.metadata),
        ref: null,
        providerPaymentId,
        state: new ProviderState({
          kind: "refunded",
          ...(providerPaymentId ? { providerPaymentId } : {}),
          refundedCents: dispute.amount,
          reason: "dispute_lost"
        })
      }
    }
    default:
      return null
  }
}

/** The Stripe provider. */
export const make = (settings: StripeSettings): PaymentProviderService => {
  const base = new URL(settings.apiBase)
  const protocol = base.protocol === "http:" ? "http" : "https"
  const stripe = new Stripe(Redacted.value(settings.secretKey), {
    host: base.hostname,
    port: base.port || (protocol === "http" ? 80 : 443),
    protocol,
    maxNetworkRetries: 2,
    timeout: 20_000,
    appInfo: { name: "Troupe" }
  })
  const failed = providerFailed("stripe")
  return {
    name: "stripe",
    // a Checkout Session does not show refunds: they come by `charge.refunded` (Stripe retries it for days)
    reportsRefunds: false,
    createCheckout: (request) =>
      Effect.tryPromise({
        try: () =>
          stripe.checkout.sessions.create(
            {
              mode: "payment",
              client_reference_id: request.paymentId,
              metadata: { payment_id: request.paymentId, user_id: request.userId },
              payment_intent_data: { metadata: { payment_id: request.paymentId, user_id: request.userId } },
              ...(request.email ? { customer_email: request.email } : {}),
              line_items: [{
                quantity: 1,
                price_data: { currency: request.currency.toLowerCase(), unit_amount: request.amountCents, product_data: { name: request.description } }
              }],
              success_url: `${request.returnUrl}${request.returnUrl.includes("?") ? "&" : "?"}payment_id=${request.paymentId}&result=success`,
              cancel_url: `${request.returnUrl}${request.returnUrl.includes("?") ? "&" : "?"}payment_id=${request.paymentId}&result=cancelled`
            },
            // a redelivered Create gets the same session back instead of a second one
            { idempotencyKey: `troupe-checkout-${request.paymentId}` }
          ),
        catch: failed
      }).pipe(
        Effect.flatMap((session) =>
          session.url
            ? Effect.succeed({ ref: session.id, url: session.url, expiresAt: session.expires_at ? new Date(session.expires_at * 1000) : null })
            : Effect.fail(failed(new Error(`checkout session ${session.id} has no url`)))
        )
      ),
    retrieve: (ref) =>
      Effect.tryPromise({ try: () => stripe.checkout.sessions.retrieve(ref), catch: failed }).pipe(Effect.map(sessionState)),
    paymentIdOf: (providerPaymentId) =>
      Effect.tryPromise({ try: () => stripe.paymentIntents.retrieve(providerPaymentId), catch: failed }).pipe(
        Effect.map((intent) => intent.metadata["payment_id"] ?? null)
      ),
    verifyWebhook: (headers, body) => {
      const signature = headers["stripe-signature"]
      if (!signature) return Effect.fail(new InvalidSignature({ provider: "stripe", message: "missing Stripe-Signature header" }))
      return Effect.tryPromise({
        try: () => stripe.webhooks.constructEventAsync(body, signature, Redacted.value(settings.webhookSecret), 300),
        catch: (e) => new InvalidSignature({ provider: "stripe", message: e instanceof Error ? e.message : String(e) })
      }).pipe(Effect.map(readEvent))
    }
  }
}
