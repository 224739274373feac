/**
 * The Payment entity: the workflow of one payment. Its state is the payment row; each message
 * moves it forward from where it is, so a message delivered twice, late, or after a crash
 * changes nothing that was already done:
 *
 *   created → pending (checkout opened) → paid (the provider says so) → credited (credits granted
 *   through the Credit entity with the provider's payment id as idempotency key, invoice number
 *   taken in the same transaction) → invoice rendered, encrypted, stored → invoice mailed.
 *   created/pending → failed | expired; a refund takes the credits back (proportionally) and a
 *   full one ends in `refunded`.
 *
 * The poller (a cluster singleton) sends `Sync` to payments that wait: pending ones whose webhook
 * may be lost (the provider is asked), and ones whose later steps did not finish.
 */
import * as Entity from "@effect/cluster/Entity"
import type * as Sharding from "@effect/cluster/Sharding"
import * as Singleton from "@effect/cluster/Singleton"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { BlobStore } from "../../runtime/BlobStore.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import { TroupeConfig } from "../../runtime/Config.ts"
import { KeyRing } from "../../runtime/KeyRing.ts"
import { Mailer } from "../../runtime/Mailer.ts"
import { Credit, Grant, Reverse } from "../credit/protocol.ts"
import { User } from "../user/protocol.ts"
import { PaymentConfig } from "./config.ts"
import type { Seller } from "./config.ts"
import * as Invoice from "./invoice.ts"
import type { Create, Observe, ProviderState } from "./protocol.ts"
import { InvoiceNotFound, Payment, PaymentNotFound, PaymentsDisabled, PaymentView } from "./protocol.ts"
import { amountMatches, PaymentProvider } from "./provider.ts"
import * as Repo from "./repo.ts"

/** The data key invoices are encrypted with (kept when an account is deleted: invoices must be). */
export const invoiceKey = "invoices"

/** A failed invoice mail is tried this many times (by the poller) before it is left for an operator. */
export const maxMailAttempts = 8

const toView = (p: Repo.PaymentRow) =>
  new PaymentView({
    paymentId: p.paymentId,
    userId: p.userId,
    provider: p.provider,
    status: p.status,
    packageId: p.packageId,
    packageName: p.packageName,
    credits: p.credits,
    netCents: p.netCents,
    vatCents: p.vatCents,
    grossCents: p.grossCents,
    currency: p.currency,
    vatPercent: p.vatPercent,
    checkoutUrl: p.checkoutUrl,
    providerPaymentId: p.providerPaymentId,
    refundedCents: p.refundedCents,
    creditsReversed: p.creditsReversed,
    invoiceNumber: p.invoiceNumber,
    failureReason: p.failureReason,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    expiresAt: p.expiresAt
  })

/** The blob key of an invoice's encrypted PDF. */
export const invoiceBlobKey = (number: string) => `invoices/${number}.pdf.enc`

/** Host Payment entities. */
export const layer: Layer.Layer<
  never,
  never,
  Sharding.Sharding | SqlClient.SqlClient | PaymentConfig | PaymentProvider | KeyRing | BlobStore | Mailer | TroupeConfig
> = Payment.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const paymentId = address.entityId
    const settings = yield* PaymentConfig
    const provider = yield* PaymentProvider
    const keys = yield* KeyRing
    const blobs = yield* BlobStore
    const mailer = yield* Mailer
    const troupe = yield* TroupeConfig
    const repo = yield* Repo.make
    const sql = repo.sql
    const accounts = yield* Credit.client
    const users = yield* User.client
    const log = (message: string, fields: Record<string, unknown> = {}) =>
      Effect.logInfo(message).pipe(Effect.annotateLogs({ payment_id: paymentId, ...fields }))

    const load = Effect.flatMap(Effect.orDie(repo.get(paymentId)), (p) => (p ? Effect.succeed(p) : Effect.fail(new PaymentNotFound({ paymentId }))))
    const withSql = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provideService(effect, SqlClient.SqlClient, sql)

    const profile = (userId: string) =>
      retryTransient(users(userId).Profile()).pipe(Effect.map(Option.some), Effect.catchAll(() => Effect.succeed(Option.none())), Effect.orDie)

    /** The provider's word about the payment, applied to its state. */
    const apply = (p: Repo.PaymentRow, state: ProviderState) =>
      Effect.gen(function*() {
        switch (state.kind) {
          case "pending":
            return
          case "paid": {
            if (!amountMatches(state, p.grossCents, p.currency)) {
              yield* Effect.logError("Payment amount does not match the package: not credited").pipe(
                Effect.annotateLogs({ payment_id: paymentId, expected: `${p.grossCents} ${p.currency}`, got: `${state.amountCents} ${state.currency}` })
              )
              yield* repo.markClosed(paymentId, "failed", "amount_mismatch")
              return
            }
            if (yield* repo.markPaid(paymentId, state.providerPaymentId ?? p.providerRef ?? paymentId)) yield* log("Payment paid", { provider: p.provider })
            return
          }
          case "failed":
          case "expired":
            yield* repo.markClosed(paymentId, state.kind, state.reason ?? state.kind)
            return
          case "refunded": {
            // a refund means it was paid, whatever order the events came in
            yield* repo.markPaid(paymentId, state.providerPaymentId ?? p.providerPaymentId ?? p.providerRef ?? paymentId)
            yield* repo.recordRefund(paymentId, Math.min(state.refundedCents ?? p.grossCents, p.grossCents))
            yield* log("Payment refunded", { refunded_cents: state.refundedCents ?? p.grossCents })
            return
          }
        }
      }).pipe(Effect.orDie)

    const grantKey = (p: Repo.PaymentRow) => `payment:${p.provider}:${p.providerPaymentId ?? paymentId}`

    /** paid → credited: the grant (idempotent by the provider's payment id), then number and state. */
    const credit = (p: Repo.PaymentRow) =>
      Effect.gen(function*() {
        yield* retryTransient(accounts(p.userId).Grant(new Grant({ key: grantKey(p), amount: p.credits, reason: `purchase ${p.packageName} (${paymentId})`.slice(0, 200) })))
        const buyer = yield* profile(p.userId)
        const buyerData: Invoice.Buyer = Option.match(buyer, {
          onNone: () => ({ name: p.userId, email: "", userId: p.userId }),
          onSome: (b) => ({ name: b.displayName || b.username, email: b.email, userId: p.userId })
        })
        yield* keys.createDataKey(invoiceKey)
        const buyerSealed = yield* keys.encryptText(invoiceKey, JSON.stringify(buyerData), `invoice-buyer:${paymentId}`)
        const issuedAt = new Date()
        const number = yield* repo.credit(paymentId, {
          series: String(issuedAt.getUTCFullYear()),
          prefix: settings.invoicePrefix,
          issuedAt,
          seller: settings.seller,
          buyerSealed
        })
        if (number) yield* log("Payment credited", { credits: p.credits, invoice: number, user_id: p.userId })
      }).pipe(Effect.orDie)

    const invoiceData = (p: Repo.PaymentRow, row: Repo.InvoiceRow) =>
      Effect.map(keys.decryptText(row.buyerSealed, `invoice-buyer:${paymentId}`), (buyer): Invoice.InvoiceData => ({
        number: row.number,
        issuedAt: row.issuedAt,
        seller: row.seller as Seller,
        buyer: JSON.parse(buyer) as Invoice.Buyer,
        paymentId,
        provider: p.provider,
        providerPaymentId: p.providerPaymentId,
        packageName: p.packageName,
        credits: p.credits,
        netCents: p.netCents,
        vatCents: p.vatCents,
        grossCents: p.grossCents,
        vatPercent: p.vatPercent,
        currency: p.currency
      }))

    const renderPdf = (p: Repo.PaymentRow, row: Repo.InvoiceRow) =>
      Effect.flatMap(invoiceData(p, row), (data) => Effect.promise(() => Invoice.render(data)))

    /** Render, encrypt and store the invoice (again, if the blob is missing). */
    const storeInvoice = (p: Repo.PaymentRow, row: Repo.InvoiceRow) =>
      Effect.gen(function*() {
        const pdf = yield* renderPdf(p, row)
        const key = invoiceBlobKey(row.number)
        const sealed = yield* keys.encrypt(invoiceKey, pdf, `invoice:${paymentId}`)
        yield* blobs.put(key, sealed, { contentType: "application/octet-stream" })
        yield* withSql(Repo.markInvoiceStored(paymentId, key))
        return pdf
      })

    const readPdf = (p: Repo.PaymentRow, row: Repo.InvoiceRow) =>
      Effect.gen(function*() {
        if (row.blobKey) {
          const stored = yield* blobs.get(row.blobKey)
          if (Option.isSome(stored)) return yield* keys.decrypt(stored.value, `invoice:${paymentId}`)
          yield* Effect.logWarning("Invoice blob missing: rendering it again").pipe(Effect.annotateLogs({ payment_id: paymentId, key: row.blobKey }))
        }
        return yield* storeInvoice(p, row)
      })

    const mailInvoice = (p: Repo.PaymentRow, row: Repo.InvoiceRow, pdf: Uint8Array) =>
      Effect.gen(function*() {
        const data = yield* invoiceData(p, row)
        if (!data.buyer.email) return yield* Effect.logWarning("No e-mail address for the invoice").pipe(Effect.annotateLogs({ payment_id: paymentId }))
        const sent = yield* mailer.send({
          to: data.buyer.email,
          subject: `Your invoice ${row.number} from ${data.seller.name}`,
          text: [
            `Hello ${data.buyer.name},`,
            "",
            `thank you for your purchase of ${p.packageName} (${p.credits} credits) for ${Invoice.money(p.grossCents, p.currency)}.`,
            `The credits are in your account. Your invoice ${row.number} is attached.`,
            "",
            `Payment: ${paymentId}`,
            "",
            data.seller.name
          ].join("\n"),
          attachments: [{ filename: `${row.number}.pdf`, content: pdf, contentType: "application/pdf" }]
        }).pipe(Effect.either)
        if (sent._tag === "Right") {
          yield* withSql(Repo.markInvoiceEmailed(paymentId))
          yield* log("Invoice mailed", { invoice: row.number })
        } else {
          yield* withSql(Repo.markMailFailed(paymentId, sent.left.message))
          yield* Effect.logWarning("Invoice mail failed; the poller tries again").pipe(Effect.annotateLogs({ payment_id: paymentId, invoice: row.number, error: sent.left.message }))
        }
      })

    /** Take back what refunds took away. */
    const reverse = (p: Repo.PaymentRow) =>
      Effect.gen(function*() {
        const target = Repo.creditsToReverse(p)
        if (target <= p.creditsReversed) return
        yield* retryTransient(accounts(p.userId).Reverse(new Reverse({
          key: `refund:${p.provider}:${p.providerPaymentId ?? paymentId}:${p.refundedCents}`,
          amount: target - p.creditsReversed,
          reason: `refund of ${paymentId}`
        })))
        yield* repo.recordReversal(paymentId, p.creditsReversed, target)
        yield* log("Refund reversed credits", { credits: target - p.creditsReversed, user_id: p.userId })
      }).pipe(Effect.orDie)

    /** Do every step the payment's state allows, from where it is. */
    const advance = Effect.gen(function*() {
      let p = yield* load
      if (p.status === "paid") {
        yield* credit(p)
        p = yield* load
      }
      if (p.status === "credited" || p.status === "refunded") {
        yield* reverse(p)
        const row = yield* Effect.orDie(withSql(Repo.invoice(paymentId)))
        if (row && (!row.blobKey || (!row.emailedAt && row.mailAttempts < maxMailAttempts))) {
          const pdf = yield* (row.blobKey ? readPdf(p, row) : storeInvoice(p, row))
          if (!row.emailedAt) yield* mailInvoice(p, row, pdf)
        }
        p = yield* load
      }
      return toView(p)
    }).pipe(Effect.catchTags({ BlobStoreError: Effect.die, InvalidBlobKey: Effect.die, KeyRingError: Effect.die, DataKeyDestroyed: Effect.die, SqlError: Effect.die }))

    const returnUrl = Option.getOrElse(settings.returnUrl, () => `${Option.getOrElse(troupe.http.publicUrl, () => `http://localhost:${troupe.http.port}`)}/credits`)

    const create = (payload: Create) =>
      Effect.gen(function*() {
        if (provider.name === "manual") return yield* new PaymentsDisabled()
        const pkg = payload.package
        yield* Effect.orDie(repo.insert({
          paymentId,
          userId: payload.userId,
          provider: provider.name,
          packageId: pkg.id,
          packageName: pkg.name,
          credits: pkg.credits,
          grossCents: pkg.priceCents,
          currency: pkg.currency,
          vatPercent: pkg.vatPercent
        }))
        const p = yield* Effect.orDie(load)
        if (p.status !== "created") return toView(p)
        const buyer = yield* profile(p.userId)
        const checkout = yield* provider.createCheckout({
          paymentId,
          userId: p.userId,
          email: Option.match(buyer, { onNone: () => null, onSome: (b) => b.email }),
          description: `${p.packageName} (${p.credits} credits)`,
          amountCents: p.grossCents,
          currency: p.currency,
          returnUrl
        }).pipe(
          Effect.tapError((e) =>
            Effect.zipRight(
              Effect.orDie(repo.markClosed(paymentId, "failed", "checkout_failed")),
              Effect.logWarning("Checkout could not be opened").pipe(Effect.annotateLogs({ payment_id: paymentId, error: e.message }))
            )
          )
        )
        yield* Effect.orDie(repo.setCheckout(paymentId, checkout))
        yield* log("Checkout opened", { provider: provider.name, ref: checkout.ref })
        return toView(yield* Effect.orDie(load))
      })

    const observe = (payload: Observe) =>
      Effect.gen(function*() {
        const p = yield* load
        if (payload.provider !== p.provider) {
          yield* Effect.logWarning("Event from another provider ignored").pipe(Effect.annotateLogs({ payment_id: paymentId, provider: payload.provider }))
          return toView(p)
        }
        const ref = payload.ref ?? p.providerRef
        const state = payload.state ?? (ref ? yield* provider.retrieve(ref) : undefined)
        if (state) yield* apply(p, state)
        return yield* advance
      })

    const sync = Effect.gen(function*() {
      const p = yield* load
      const open = p.status === "created" || p.status === "pending"
      // a credited payment is asked again where the provider tells refunds (a lost refund webhook)
      if ((open || (p.status === "credited" && provider.reportsRefunds)) && p.providerRef) {
        yield* Effect.orDie(repo.touchPolled(paymentId))
        const state = yield* provider.retrieve(p.providerRef)
        yield* apply(p, state)
        if (open ? state.kind !== "pending" : state.kind === "refunded") yield* log("Polling found the payment's outcome", { state: state.kind })
      }
      return yield* advance
    })

    return Payment.of({
      Create: ({ payload }) => create(payload),
      Observe: ({ payload }) => observe(payload),
      Sync: () => sync,
      Get: () => Effect.map(load, toView),
      Invoice: () =>
        Effect.gen(function*() {
          const p = yield* load
          const row = yield* Effect.orDie(withSql(Repo.invoice(paymentId)))
          if (!row) return yield* new InvoiceNotFound({ paymentId })
          const pdf = yield* readPdf(p, row).pipe(Effect.orDie)
          return { number: row.number, pdf }
        })
    })
  }),
  { maxIdleTime: "2 minutes", concurrency: 1 }
)

/**
 * The poller: one runner of the cluster (a singleton) sends `Sync` to payments that wait — a
 * pending one whose webhook may never come is asked of the provider; a stalled one is finished.
 */
export const layerPoller: Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient | PaymentConfig | PaymentProvider> = Layer.unwrapEffect(
  Effect.map(Effect.zip(PaymentConfig, PaymentProvider), ([settings, provider]) =>
    settings.provider._tag === "manual"
      ? Layer.empty
      : Singleton.make(
        "troupe-payment-poller",
        Effect.gen(function*() {
          const client = yield* Payment.client
          const ids = yield* Repo.due({
            pollAfterMs: Duration.toMillis(settings.pollAfter),
            maxMailAttempts,
            limit: 200,
            refunds: provider.reportsRefunds ? { everyMs: Duration.toMillis(settings.refundPoll), windowMs: Duration.toMillis(settings.refundWindow) } : undefined
          })
          yield* Effect.forEach(
            ids,
            (id) => retryTransient(client(id).Sync()).pipe(Effect.catchAllCause((cause) => Effect.logWarning("Payment sync failed", cause).pipe(Effect.annotateLogs({ payment_id: id })))),
            { concurrency: 4, discard: true }
          )
        }).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning("Payment poll failed", cause)),
          Effect.repeat(Schedule.spaced(settings.pollInterval)),
          Effect.asVoid
        )
      ))
)
