/**
 * Buying credits: the credit packages (listed for everyone, configured by admins), payments
 * (start a checkout, follow it, the history, the invoice PDF) and the providers' webhooks.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { PlainText } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { Id, Paging } from "./common.ts"
import { BadGateway, BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"


const Currency = Schema.String.pipe(Schema.pattern(/^[A-Za-z]{3}$/, { message: () => "must be a 3-letter ISO 4217 code like EUR" }))
const Credits = Schema.Int.pipe(Schema.between(1, 1_000_000_000))
const PriceCents = Schema.Int.pipe(Schema.between(1, 100_000_000))
const VatPercent = Schema.Number.pipe(Schema.between(0, 99.99))

/** A credit package. */
export const CreditPackage = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  credits: Schema.Number,
  price_cents: Schema.Number.annotations({ description: "What the buyer pays, VAT included, in the currency's minor unit" }),
  currency: Schema.String,
  vat_percent: Schema.Number,
  net_cents: Schema.Number,
  vat_cents: Schema.Number,
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotations({ identifier: "CreditPackage" })

/** A payment. */
export const PaymentInfo = Schema.Struct({
  payment_id: Schema.String,
  status: Schema.Literal("created", "pending", "paid", "credited", "failed", "expired", "refunded"),
  provider: Schema.Literal("stripe", "revolut", "manual"),
  package_id: Schema.String,
  package_name: Schema.String,
  credits: Schema.Number,
  net_cents: Schema.Number,
  vat_cents: Schema.Number,
  gross_cents: Schema.Number,
  currency: Schema.String,
  vat_percent: Schema.Number,
  checkout_url: Schema.NullOr(Schema.String),
  refunded_cents: Schema.Number,
  credits_reversed: Schema.Number,
  invoice_number: Schema.NullOr(Schema.String),
  failure_reason: Schema.NullOr(Schema.String),
  created_at: Schema.Date,
  updated_at: Schema.Date,
  expires_at: Schema.NullOr(Schema.Date)
}).annotations({ identifier: "Payment" })

const PackagePath = Schema.Struct({ id: Id })

export class CreditPackagesGroup extends HttpApiGroup.make("credit_packages")
  .add(
    HttpApiEndpoint.get("list", "/v1/credit_packages")
      .addSuccess(Schema.Struct({ packages: Schema.Array(CreditPackage), provider: Schema.Literal("stripe", "revolut", "manual") }))
      .annotate(OpenApi.Summary, "List the credit packages on sale")
      .annotate(OpenApi.Description, "No authentication. `provider` is `manual` when the server takes no payments (an admin grants credits).")
  )
  .add(
    HttpApiEndpoint.post("create", "/v1/admin/credit_packages")
      .setPayload(Schema.Struct({ name: PlainText(100).pipe(Schema.minLength(1)), credits: Credits, price_cents: PriceCents, currency: Currency, vat_percent: VatPercent }))
      .addSuccess(CreditPackage, { status: 201 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Create a credit package (admin)")
  )
  .add(
    HttpApiEndpoint.patch("update", "/v1/admin/credit_packages/:id").setPath(PackagePath)
      .setPayload(Schema.Struct({
        name: Schema.optional(PlainText(100).pipe(Schema.minLength(1))),
        credits: Schema.optional(Credits),
        price_cents: Schema.optional(PriceCents),
        currency: Schema.optional(Currency),
        vat_percent: Schema.optional(VatPercent)
      }))
      .addSuccess(CreditPackage)
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Change a credit package (admin)")
      .annotate(OpenApi.Description, "Payments already started keep the package as it was.")
  )
  .add(
    HttpApiEndpoint.del("delete", "/v1/admin/credit_packages/:id").setPath(PackagePath)
      .addSuccess(HttpApiSchema.Empty(204))
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Withdraw a credit package (admin)")
  )
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

export class PaymentsGroup extends HttpApiGroup.make("payments")
  .add(
    HttpApiEndpoint.post("create", "/v1/payments")
      .setPayload(Schema.Struct({ package_id: Id }))
      .addSuccess(Schema.Struct({ payment_id: Schema.String, checkout_url: Schema.String, payment: PaymentInfo }), { status: 201 })
      .addError(Conflict)
      .addError(BadGateway)
      .annotate(OpenApi.Summary, "Buy a credit package")
      .annotate(OpenApi.Description, "Opens a checkout at the payment provider: send the buyer to `checkout_url`. The credits arrive when the provider confirms the payment (follow `GET /v1/payments/{id}`).")
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/payments").setUrlParams(Paging)
      .addSuccess(Schema.Struct({ payments: Schema.Array(PaymentInfo), next_before: Schema.NullOr(Schema.Number) }))
      .annotate(OpenApi.Summary, "Your payments, newest first")
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/payments/:id").setPath(Schema.Struct({ id: Id }))
      .addSuccess(PaymentInfo)
      .annotate(OpenApi.Summary, "A payment and its status")
  )
  .add(
    HttpApiEndpoint.get("invoice", "/v1/payments/:id/invoice").setPath(Schema.Struct({ id: Id }))
      .addSuccess(HttpApiSchema.Uint8Array({ contentType: "application/pdf" }))
      .annotate(OpenApi.Summary, "A paid payment's invoice (PDF)")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

export class PaymentWebhooksGroup extends HttpApiGroup.make("payment_webhooks")
  .add(
    HttpApiEndpoint.post("receive", "/v1/payments/webhook/:provider")
      .setPath(Schema.Struct({ provider: Schema.Literal("stripe", "revolut") }))
      .addSuccess(Schema.Struct({ received: Schema.Boolean }))
      .annotate(OpenApi.Summary, "A payment provider's webhook")
      .annotate(OpenApi.Description, "For Stripe and Revolut only: the raw body is verified with the provider's signature header (`Stripe-Signature`, or `Revolut-Signature` with `Revolut-Request-Timestamp`); a bad signature is `400 invalid_signature` and changes nothing.")
  )
  .addError(BadRequest)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(BadGateway)
  .addError(Unavailable)
{}
