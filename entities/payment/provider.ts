/**
 * A payment provider: opens a hosted checkout, tells a payment's state when asked, and verifies
 * and reads its webhooks. Implementations: `stripe.ts` (Checkout Sessions through the official
 * SDK), `revolut.ts` (Merchant API orders) and `manual` here (no provider: admins grant credits).
 * Which one runs is configuration (`TROUPE_PAYMENTS_PROVIDER`), chosen once as a layer.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { ProviderName, ProviderState } from "./protocol.ts"
import { PaymentsDisabled, ProviderFailed } from "./protocol.ts"

/** A webhook's signature (or its timestamp) did not verify; nothing was done. */
export class InvalidSignature extends Schema.TaggedError<InvalidSignature>()("InvalidSignature", {
  provider: Schema.String,
  message: Schema.String
}) {}

/** A hosted checkout the buyer is sent to. */
export interface Checkout {
  /** The provider's id for it (Stripe: the Checkout Session id; Revolut: the order id). */
  readonly ref: string
  readonly url: string
  readonly expiresAt: Date | null
}

/** What to charge. */
export interface CheckoutRequest {
  readonly paymentId: string
  readonly userId: string
  readonly email: string | null
  readonly description: string
  readonly amountCents: number
  readonly currency: string
  /** Where the buyer returns to after paying (or cancelling). */
  readonly returnUrl: string
}

/** A verified webhook, reduced to what the payment workflow needs. */
export interface WebhookEvent {
  /** Unique per event (the provider's event id, or a digest of the signed body). */
  readonly eventId: string
  /** The provider's event type, for logs. */
  readonly type: string
  /** Our payment id when the event carries it (metadata, client reference, order reference). */
  readonly paymentId: string | null
  /** The checkout/order id the event is about. */
  readonly ref: string | null
  /** The provider's payment id (Stripe: the PaymentIntent) when the event names one. */
  readonly providerPaymentId: string | null
  /** What the event says, or null when it only names the order (then the provider is asked). */
  readonly state: ProviderState | null
}

/** The provider service. */
export interface PaymentProviderService {
  readonly name: ProviderName
  /**
   * `retrieve` of a paid payment tells its refunds (Revolut: the order's `refunded_amount`), so
   * the poller re-checks credited payments for refunds whose webhook was lost.
   */
  readonly reportsRefunds: boolean
  readonly createCheckout: (request: CheckoutRequest) => Effect.Effect<Checkout, ProviderFailed | PaymentsDisabled>
  /** Ask the provider about a checkout/order (polling, or a webhook that names only the order). */
  readonly retrieve: (ref: string) => Effect.Effect<ProviderState, ProviderFailed>
  /** Our payment id recorded at the provider for one of its payment ids (an event that names only that). */
  readonly paymentIdOf: (providerPaymentId: string) => Effect.Effect<string | null, ProviderFailed>
  /**
   * Verify a webhook (raw body exactly as received, lower-case header names). `null` for a
   * verified event of a type the workflow does not act on.
   */
  readonly verifyWebhook: (headers: Readonly<Record<string, string | undefined>>, body: string) => Effect.Effect<WebhookEvent | null, InvalidSignature>
}

/** The configured payment provider. */
export class PaymentProvider extends Context.Tag("troupe/entities/payment/PaymentProvider")<PaymentProvider, PaymentProviderService>() {}

/** No provider: checkouts are refused, webhooks do not verify. */
export const manual: PaymentProviderService = {
  name: "manual",
  reportsRefunds: false,
  createCheckout: () => Effect.fail(new PaymentsDisabled()),
  retrieve: () => Effect.fail(new ProviderFailed({ provider: "manual", message: "no payment provider is configured" })),
  paymentIdOf: () => Effect.succeed(null),
  verifyWebhook: () => Effect.fail(new InvalidSignature({ provider: "manual", message: "no payment provider is configured" }))
}

/** Amount and currency of a state match what was asked. */
export const amountMatches = (state: ProviderState, grossCents: number, currency: string): boolean =>
  (state.amountCents === undefined || state.amountCents === grossCents) &&
  (state.currency === undefined || state.currency.toUpperCase() === currency.toUpperCase())

/** Errors of `fetch` and of non-2xx answers as `ProviderFailed`. */
export const providerFailed = (provider: ProviderName) => (cause: unknown) =>
  new ProviderFailed({ provider, message: cause instanceof Error ? cause.message : String(cause) })
