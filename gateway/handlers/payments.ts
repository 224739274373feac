/** Handlers of `/v1/credit_packages`, `/v1/admin/credit_packages`, `/v1/payments` and the providers' webhooks. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Catalog from "../../entities/payment/catalog.ts"
import type { PackageNotFound } from "../../entities/payment/catalog.ts"
import * as PaymentConfig from "../../entities/payment/config.ts"
import { Create, Observe, Payment } from "../../entities/payment/protocol.ts"
import type { InvoiceNotFound, PaymentNotFound, PaymentsDisabled, PaymentView, ProviderFailed } from "../../entities/payment/protocol.ts"
import { PaymentProvider } from "../../entities/payment/provider.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { GatewayConfig } from "../Config.ts"
import { ApiFailure, type EntityError, fromEntity } from "../Errors.ts"
import * as Policy from "../Policy.ts"
import { clientIp, noContent } from "./common.ts"

/**
 * Everything the payment handlers fail with: the packages' and the Payment entity's errors, the
 * database's, the entities' and the cluster's, and failures already made.
 */
type PaymentFailure = PackageNotFound | PaymentNotFound | InvoiceNotFound | PaymentsDisabled | ProviderFailed | SqlError | EntityError | ApiFailure

/**
 * A payment failure as an `ApiFailure`; the entities' and the cluster's go through `fromEntity`.
 * Exhaustive by type: an error added to `PaymentFailure` does not compile until it is mapped.
 */
const failure = (e: PaymentFailure): ApiFailure => {
  const f = (status: number, code: string, message: string, details?: unknown) =>
    new ApiFailure(details === undefined ? { status, code, message } : { status, code, message, details })
  switch (e._tag) {
    case "ApiFailure":
      return e
    case "PackageNotFound":
      return f(404, "package_not_found", "No such credit package")
    case "PaymentNotFound":
      return f(404, "payment_not_found", "No such payment")
    case "InvoiceNotFound":
      return f(404, "invoice_not_found", "This payment has no invoice (it is not paid)")
    case "PaymentsDisabled":
      return f(409, "payments_disabled", "This server takes no payments: an admin grants credits")
    case "ProviderFailed":
      return f(502, "payment_provider_error", "The payment provider could not be reached or refused; try again", { provider_message: e.message })
    case "SqlError":
      return f(503, "unavailable", "The database is busy or restarting; retry")
    default:
      return fromEntity(e)
  }
}

/** Run a payment service or entity call: retried while the cluster moves shards, its errors mapped. */
const payments = <A, E extends PaymentFailure, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, ApiFailure, R> =>
  Effect.mapError(retryTransient(effect), failure)

const toPackage = (p: Catalog.PackageRow) => ({
  id: p.id,
  name: p.name,
  credits: p.credits,
  price_cents: p.priceCents,
  currency: p.currency,
  vat_percent: p.vatPercent,
  net_cents: Catalog.split(p.priceCents, p.vatPercent).netCents,
  vat_cents: Catalog.split(p.priceCents, p.vatPercent).vatCents,
  created_at: p.createdAt,
  updated_at: p.updatedAt
})

type PaymentFields = Pick<
  PaymentView,
  | "paymentId" | "status" | "provider" | "packageId" | "packageName" | "credits" | "netCents" | "vatCents" | "grossCents" | "currency"
  | "vatPercent" | "checkoutUrl" | "refundedCents" | "creditsReversed" | "invoiceNumber" | "failureReason" | "createdAt" | "updatedAt" | "expiresAt"
>

const toPayment = (v: PaymentFields) => ({
  payment_id: v.paymentId,
  status: v.status,
  provider: v.provider,
  package_id: v.packageId,
  package_name: v.packageName,
  credits: v.credits,
  net_cents: v.netCents,
  vat_cents: v.vatCents,
  gross_cents: v.grossCents,
  currency: v.currency,
  vat_percent: v.vatPercent,
  checkout_url: v.checkoutUrl,
  refunded_cents: v.refundedCents,
  credits_reversed: v.creditsReversed,
  invoice_number: v.invoiceNumber,
  failure_reason: v.failureReason,
  created_at: v.createdAt,
  updated_at: v.updatedAt,
  expires_at: v.expiresAt
})

const paymentIdPattern = /^pay_[A-Za-z0-9]{1,40}$/

const packages = HttpApiBuilder.group(TroupeApi, "credit_packages", (handlers) =>
  Effect.gen(function*() {
    const provider = yield* PaymentProvider
    const admin = Effect.flatMap(CurrentPrincipal, (principal) => Policy.require(principal, Policy.Admin))
    return handlers
      .handle("list", () =>
        Effect.map(payments(Catalog.packages()), (rows) => ({ packages: rows.map(toPackage), provider: provider.name })))
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          yield* admin
          const row = yield* payments(Catalog.createPackage({
            name: payload.name,
            credits: payload.credits,
            priceCents: payload.price_cents,
            currency: payload.currency.toUpperCase(),
            vatPercent: Math.round(payload.vat_percent * 100) / 100
          }))
          yield* Effect.logInfo("Credit package created").pipe(Effect.annotateLogs({ package_id: row.id }))
          return toPackage(row)
        }))
      .handle("update", ({ path, payload }) =>
        Effect.gen(function*() {
          yield* admin
          const row = yield* payments(Catalog.updatePackage(path.id, {
            ...(payload.name !== undefined ? { name: payload.name } : {}),
            ...(payload.credits !== undefined ? { credits: payload.credits } : {}),
            ...(payload.price_cents !== undefined ? { priceCents: payload.price_cents } : {}),
            ...(payload.currency !== undefined ? { currency: payload.currency.toUpperCase() } : {}),
            ...(payload.vat_percent !== undefined ? { vatPercent: Math.round(payload.vat_percent * 100) / 100 } : {})
          }))
          return toPackage(row)
        }))
      .handle("delete", ({ path }) =>
        Effect.gen(function*() {
          yield* admin
          yield* payments(Catalog.deletePackage(path.id))
          return noContent()
        }))
  }))

const paymentsGroup = HttpApiBuilder.group(TroupeApi, "payments", (handlers) =>
  Effect.gen(function*() {
    const client = yield* Payment.client
    /** The payment, if it is the caller's (anyone else's is "not found"). */
    const owned = (userId: string, paymentId: string) =>
      Effect.flatMap(payments(client(paymentId).Get()), (view) =>
        view.userId === userId ? Effect.succeed(view) : Effect.fail(new ApiFailure({ status: 404, code: "payment_not_found", message: "No such payment" })))
    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          // spending money is for the account holder's session, never an API key
          yield* Policy.require(principal, Policy.Account)
          const pkg = yield* payments(Catalog.activePackage(payload.package_id))
          const paymentId = Catalog.newPaymentId()
          const view = yield* payments(client(paymentId).Create(new Create({ paymentId, userId: principal.userId, package: Catalog.snapshot(pkg) })))
          if (view.checkoutUrl === null) {
            return yield* Effect.fail(new ApiFailure({ status: 502, code: "payment_provider_error", message: "The payment provider opened no checkout; try again" }))
          }
          yield* Effect.logInfo("Payment started").pipe(Effect.annotateLogs({ payment_id: paymentId, user_id: principal.userId, package_id: pkg.id }))
          return { payment_id: paymentId, checkout_url: view.checkoutUrl, payment: toPayment(view) }
        }))
      .handle("list", ({ urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Profile)
          const page = yield* payments(Catalog.history(principal.userId, { limit: urlParams.limit ?? 50, before: urlParams.before }))
          return {
            payments: page.payments.map(toPayment),
            next_before: page.next
          }
        }))
      .handle("get", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Profile)
          return toPayment(yield* owned(principal.userId, path.id))
        }))
      .handle("invoice", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.Profile)
          yield* owned(principal.userId, path.id)
          const invoice = yield* payments(client(path.id).Invoice())
          return HttpServerResponse.uint8Array(invoice.pdf, {
            contentType: "application/pdf",
            headers: { "content-disposition": `attachment; filename="${invoice.number}.pdf"`, "cache-control": "private, no-store" }
          })
        }))
  }))

const webhooks = HttpApiBuilder.group(TroupeApi, "payment_webhooks", (handlers) =>
  Effect.gen(function*() {
    const provider = yield* PaymentProvider
    const client = yield* Payment.client
    const config = yield* GatewayConfig
    return handlers.handle("receive", ({ path, request }) =>
      Effect.gen(function*() {
        if (provider.name !== path.provider) {
          return yield* Effect.fail(new ApiFailure({ status: 404, code: "provider_not_configured", message: `This server does not take payments through ${path.provider}` }))
        }
        const body = yield* Effect.mapError(request.text, () => new ApiFailure({ status: 400, code: "invalid_body", message: "Could not read the body" }))
        const event = yield* provider.verifyWebhook(request.headers, body).pipe(
          Effect.tapError((e) =>
            Effect.logWarning("Payment webhook refused: bad signature").pipe(
              Effect.annotateLogs({ provider: path.provider, reason: e.message, client: clientIp(request, config.trustProxy) })
            )
          ),
          Effect.mapError((e) => new ApiFailure({ status: 400, code: "invalid_signature", message: "The webhook's signature does not verify", details: { reason: e.message } }))
        )
        if (event === null) return { received: true }
        const paymentId = yield* payments(Catalog.resolve(provider, event))
        if (paymentId === undefined || !paymentIdPattern.test(paymentId)) {
          yield* Effect.logWarning("Payment webhook for no known payment").pipe(Effect.annotateLogs({ provider: path.provider, type: event.type, event_id: event.eventId }))
          return { received: true }
        }
        yield* payments(client(paymentId).Observe(new Observe({ provider: provider.name, eventId: event.eventId, ref: event.ref, state: event.state }))).pipe(
          Effect.catchIf(
            (e) => e.code === "payment_not_found",
            () => Effect.logWarning("Payment webhook for no known payment").pipe(Effect.annotateLogs({ provider: path.provider, payment_id: paymentId }))
          )
        )
        return { received: true }
      }))
  }))

/** The payments' handlers, with the configured provider (`TROUPE_PAYMENTS_PROVIDER`). */
export const layer = Layer.mergeAll(packages, paymentsGroup, webhooks).pipe(
  Layer.provide(PaymentConfig.layerProvider),
  Layer.provide(PaymentConfig.layer)
)
