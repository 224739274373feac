/**
 * The Payment entity's protocol: one entity per payment, a persisted workflow
 * created → pending → paid → credited (or failed / expired / refunded). Commands that change a
 * payment are persisted messages keyed by what makes them unique (the payment id, the provider's
 * event id), so a repeated or concurrent delivery is one message; the handlers are idempotent on
 * top of that (the credit grant's idempotency key is the provider's payment id).
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Schema from "effect/Schema"

/** The payment providers. */
export const ProviderName = Schema.Literal("stripe", "revolut", "manual")
export type ProviderName = typeof ProviderName.Type

/** Where a payment is in its life. */
export const PaymentStatus = Schema.Literal("created", "pending", "paid", "credited", "failed", "expired", "refunded")
export type PaymentStatus = typeof PaymentStatus.Type

/** ISO 4217 currency code, upper case. */
export const Currency = Schema.String.pipe(Schema.pattern(/^[A-Z]{3}$/, { message: () => "must be a 3-letter ISO 4217 code like EUR" }))

/** What was bought, frozen when the payment was created (a package may change later). */
export class PackageSnapshot extends Schema.Class<PackageSnapshot>("troupe/Payment/PackageSnapshot")({
  id: Schema.String,
  name: Schema.String,
  credits: Schema.Int,
  /** What the buyer pays, VAT included, in the currency's minor unit. */
  priceCents: Schema.Int,
  currency: Currency,
  vatPercent: Schema.Number
}) {}

/** A payment as its owner sees it. */
export class PaymentView extends Schema.Class<PaymentView>("troupe/Payment/PaymentView")({
  paymentId: Schema.String,
  userId: Schema.String,
  provider: ProviderName,
  status: PaymentStatus,
  packageId: Schema.String,
  packageName: Schema.String,
  credits: Schema.Int,
  netCents: Schema.Int,
  vatCents: Schema.Int,
  grossCents: Schema.Int,
  currency: Schema.String,
  vatPercent: Schema.Number,
  checkoutUrl: Schema.NullOr(Schema.String),
  providerPaymentId: Schema.NullOr(Schema.String),
  refundedCents: Schema.Int,
  creditsReversed: Schema.Int,
  invoiceNumber: Schema.NullOr(Schema.String),
  failureReason: Schema.NullOr(Schema.String),
  createdAt: Schema.DateFromNumber,
  updatedAt: Schema.DateFromNumber,
  expiresAt: Schema.NullOr(Schema.DateFromNumber)
}) {}

/**
 * What the provider says about a payment: from a verified webhook or from asking the provider.
 * `refundedCents` is the total refunded so far (not the last refund).
 */
export class ProviderState extends Schema.Class<ProviderState>("troupe/Payment/ProviderState")({
  kind: Schema.Literal("pending", "paid", "failed", "expired", "refunded"),
  providerPaymentId: Schema.optional(Schema.String),
  amountCents: Schema.optional(Schema.Int),
  currency: Schema.optional(Schema.String),
  refundedCents: Schema.optional(Schema.Int),
  reason: Schema.optional(Schema.String)
}) {}

/** The payment is unknown (or not the caller's). */
export class PaymentNotFound extends Schema.TaggedError<PaymentNotFound>()("PaymentNotFound", {
  paymentId: Schema.String
}) {}

/** The payment has no invoice (yet): it is not paid. */
export class InvoiceNotFound extends Schema.TaggedError<InvoiceNotFound>()("InvoiceNotFound", {
  paymentId: Schema.String
}) {}

/** The provider could not be reached or refused the request. */
export class ProviderFailed extends Schema.TaggedError<ProviderFailed>()("ProviderFailed", {
  provider: Schema.String,
  message: Schema.String
}) {}

/** No payment provider is configured (`TROUPE_PAYMENTS_PROVIDER=manual`): credits come from admins. */
export class PaymentsDisabled extends Schema.TaggedError<PaymentsDisabled>()("PaymentsDisabled", {}) {}

/** Start a payment: store it and open a checkout at the provider. */
export class Create extends Schema.Class<Create>("troupe/Payment/Create")({
  paymentId: Schema.String,
  userId: Schema.String,
  package: PackageSnapshot
}) {
  [PrimaryKey.symbol]() {
    return `create:${this.paymentId}`
  }
}

/** A verified provider event about this payment (a webhook). */
export class Observe extends Schema.Class<Observe>("troupe/Payment/Observe")({
  provider: ProviderName,
  eventId: Schema.String,
  /** The provider's checkout/order id the event is about. */
  ref: Schema.NullOr(Schema.String),
  /** What the event says; absent when the event only names the payment (Revolut): the entity asks the provider. */
  state: Schema.NullOr(ProviderState)
}) {
  [PrimaryKey.symbol]() {
    return `observe:${this.provider}:${this.eventId}`
  }
}

/** The Payment entity. */
export const Payment = Entity.make("Payment", [
  Rpc.make("Create", { payload: Create, success: PaymentView, error: Schema.Union(ProviderFailed, PaymentsDisabled) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("Observe", { payload: Observe, success: PaymentView, error: Schema.Union(PaymentNotFound, ProviderFailed) })
    .annotate(ClusterSchema.Persisted, true),
  // asks the provider (a pending payment whose webhook may be lost) and finishes unfinished steps
  // (credits, invoice, mail); sent by the poller, which repeats it, so it need not be persisted
  Rpc.make("Sync", { success: PaymentView, error: Schema.Union(PaymentNotFound, ProviderFailed) }),
  Rpc.make("Get", { success: PaymentView, error: PaymentNotFound }),
  Rpc.make("Invoice", {
    success: Schema.Struct({ number: Schema.String, pdf: Schema.Uint8ArrayFromBase64 }),
    error: Schema.Union(PaymentNotFound, InvoiceNotFound)
  })
])
