/**
 * The payments' SQL: credit packages (admin-configured), payments (the workflow's state, written
 * only by the Payment entity), invoices and the invoice number counters.
 *
 * Invoice numbers are gap-free: a number is taken from its series' counter row in the same
 * transaction that moves the payment from `paid` to `credited` and inserts the invoice. The row
 * lock serialises concurrent payments, and a transaction that fails gives its number back by
 * rolling back (a Postgres sequence would not: `nextval` is never rolled back).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Migration } from "../../runtime/Migrations.ts"
import type { PaymentStatus, ProviderName } from "./protocol.ts"

export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026120750,
    name: "payments",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        CREATE TABLE IF NOT EXISTS credit_packages (
          package_id TEXT PRIMARY KEY,
          name TEXT NOT NULL,
          credits BIGINT NOT NULL CHECK (credits > 0),
          price_cents BIGINT NOT NULL CHECK (price_cents > 0),
          currency TEXT NOT NULL,
          vat_percent NUMERIC(5, 2) NOT NULL CHECK (vat_percent >= 0 AND vat_percent < 100),
          active BOOLEAN NOT NULL DEFAULT true,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS payments (
          payment_id TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          provider TEXT NOT NULL,
          status TEXT NOT NULL CHECK (status IN ('created', 'pending', 'paid', 'credited', 'failed', 'expired', 'refunded')),
          package_id TEXT NOT NULL,
          package_name TEXT NOT NULL,
          credits BIGINT NOT NULL CHECK (credits > 0),
          net_cents BIGINT NOT NULL,
          vat_cents BIGINT NOT NULL,
          gross_cents BIGINT NOT NULL CHECK (gross_cents > 0),
          currency TEXT NOT NULL,
          vat_percent NUMERIC(5, 2) NOT NULL,
          provider_ref TEXT,
          provider_payment_id TEXT,
          checkout_url TEXT,
          expires_at TIMESTAMPTZ,
          refunded_cents BIGINT NOT NULL DEFAULT 0,
          credits_reversed BIGINT NOT NULL DEFAULT 0,
          failure_reason TEXT,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          polled_at TIMESTAMPTZ,
          paid_at TIMESTAMPTZ,
          credited_at TIMESTAMPTZ
        );
        CREATE INDEX IF NOT EXISTS payments_user ON payments (user_id, created_at DESC);
        CREATE INDEX IF NOT EXISTS payments_provider_ref ON payments (provider, provider_ref);
        CREATE INDEX IF NOT EXISTS payments_provider_payment ON payments (provider, provider_payment_id);
        CREATE INDEX IF NOT EXISTS payments_open ON payments (updated_at) WHERE status IN ('created', 'pending', 'paid');
        CREATE TABLE IF NOT EXISTS invoice_counters (
          series TEXT PRIMARY KEY,
          last BIGINT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS invoices (
          payment_id TEXT PRIMARY KEY REFERENCES payments (payment_id),
          number TEXT NOT NULL UNIQUE,
          series TEXT NOT NULL,
          seq BIGINT NOT NULL,
          issued_at TIMESTAMPTZ NOT NULL,
          seller JSONB NOT NULL,
          buyer_sealed BYTEA NOT NULL,
          blob_key TEXT,
          stored_at TIMESTAMPTZ,
          emailed_at TIMESTAMPTZ,
          mail_attempts INT NOT NULL DEFAULT 0,
          mail_error TEXT,
          UNIQUE (series, seq)
        );
        CREATE INDEX IF NOT EXISTS invoices_unsent ON invoices (payment_id) WHERE emailed_at IS NULL;
      `)
  }
]

// ---------------------------------------------------------------------------------------------
// Packages

export interface PackageRow {
  readonly id: string
  readonly name: string
  readonly credits: number
  readonly priceCents: number
  readonly currency: string
  readonly vatPercent: number
  readonly active: boolean
  readonly createdAt: Date
  readonly updatedAt: Date
}

type PackageRecord = {
  package_id: string
  name: string
  credits: string
  price_cents: string
  currency: string
  vat_percent: string
  active: boolean
  created_at: Date
  updated_at: Date
}

const toPackage = (r: PackageRecord): PackageRow => ({
  id: r.package_id,
  name: r.name,
  credits: Number(r.credits),
  priceCents: Number(r.price_cents),
  currency: r.currency,
  vatPercent: Number(r.vat_percent),
  active: r.active,
  createdAt: new Date(r.created_at),
  updatedAt: new Date(r.updated_at)
})

/** Packages, cheapest first; archived ones only when asked. */
export const listPackages = (options: { readonly includeArchived: boolean }): Effect.Effect<ReadonlyArray<PackageRow>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<PackageRecord>`SELECT * FROM credit_packages ${options.includeArchived ? sql`` : sql`WHERE active`} ORDER BY price_cents, package_id`,
      (rows) => rows.map(toPackage)
    ))

export const getPackage = (id: string): Effect.Effect<PackageRow | undefined, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<PackageRecord>`SELECT * FROM credit_packages WHERE package_id = ${id}`, (rows) => (rows[0] ? toPackage(rows[0]) : undefined)))

export const insertPackage = (p: { readonly id: string; readonly name: string; readonly credits: number; readonly priceCents: number; readonly currency: string; readonly vatPercent: number }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<PackageRecord>`
        INSERT INTO credit_packages (package_id, name, credits, price_cents, currency, vat_percent)
        VALUES (${p.id}, ${p.name}, ${p.credits}, ${p.priceCents}, ${p.currency}, ${p.vatPercent})
        RETURNING *`,
      (rows) => toPackage(rows[0]!)
    ))

/** Change an active package; `undefined` when there is none. */
export const updatePackage = (
  id: string,
  patch: { readonly name?: string | undefined; readonly credits?: number | undefined; readonly priceCents?: number | undefined; readonly currency?: string | undefined; readonly vatPercent?: number | undefined }
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<PackageRecord>`
        UPDATE credit_packages SET
          name = COALESCE(${patch.name ?? null}::text, name),
          credits = COALESCE(${patch.credits ?? null}::bigint, credits),
          price_cents = COALESCE(${patch.priceCents ?? null}::bigint, price_cents),
          currency = COALESCE(${patch.currency ?? null}::text, currency),
          vat_percent = COALESCE(${patch.vatPercent ?? null}::numeric, vat_percent),
          updated_at = now()
        WHERE package_id = ${id} AND active
        RETURNING *`,
      (rows) => (rows[0] ? toPackage(rows[0]) : undefined)
    ))

/** Archive a package (payments keep pointing at it); false when there was no active one. */
export const archivePackage = (id: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ package_id: string }>`UPDATE credit_packages SET active = false, updated_at = now() WHERE package_id = ${id} AND active RETURNING package_id`,
      (rows) => rows.length > 0
    ))

// ---------------------------------------------------------------------------------------------
// Payments

export interface PaymentRow {
  readonly paymentId: string
  readonly userId: string
  readonly provider: ProviderName
  readonly status: PaymentStatus
  readonly packageId: string
  readonly packageName: string
  readonly credits: number
  readonly netCents: number
  readonly vatCents: number
  readonly grossCents: number
  readonly currency: string
  readonly vatPercent: number
  readonly providerRef: string | null
  readonly providerPaymentId: string | null
  readonly checkoutUrl: string | null
  readonly expiresAt: Date | null
  readonly refundedCents: number
  readonly creditsReversed: number
  readonly failureReason: string | null
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly paidAt: Date | null
  readonly invoiceNumber: string | null
}

type PaymentRecord = {
  payment_id: string
  user_id: string
  provider: ProviderName
  status: PaymentStatus
  package_id: string
  package_name: string
  credits: string
  net_cents: string
  vat_cents: string
  gross_cents: string
  currency: string
  vat_percent: string
  provider_ref: string | null
  provider_payment_id: string | null
  checkout_url: string | null
  expires_at: Date | null
  refunded_cents: string
  credits_reversed: string
  failure_reason: string | null
  created_at: Date
  updated_at: Date
  paid_at: Date | null
  invoice_number: string | null
}

const toPayment = (r: PaymentRecord): PaymentRow => ({
  paymentId: r.payment_id,
  userId: r.user_id,
  provider: r.provider,
  status: r.status,
  packageId: r.package_id,
  packageName: r.package_name,
  credits: Number(r.credits),
  netCents: Number(r.net_cents),
  vatCents: Number(r.vat_cents),
  grossCents: Number(r.gross_cents),
  currency: r.currency,
  vatPercent: Number(r.vat_percent),
  providerRef: r.provider_ref,
  providerPaymentId: r.provider_payment_id,
  checkoutUrl: r.checkout_url,
  expiresAt: r.expires_at ? new Date(r.expires_at) : null,
  refundedCents: Number(r.refunded_cents),
  creditsReversed: Number(r.credits_reversed),
  failureReason: r.failure_reason,
  createdAt: new Date(r.created_at),
  updatedAt: new Date(r.updated_at),
  paidAt: r.paid_at ? new Date(r.paid_at) : null,
  invoiceNumber: r.invoice_number
})

/** Net and VAT of a gross price (prices include VAT), in minor units. */
export const split = (grossCents: number, vatPercent: number): { readonly netCents: number; readonly vatCents: number } => {
  const netCents = Math.round((grossCents * 100) / (100 + vatPercent))
  return { netCents, vatCents: grossCents - netCents }
}

/** Credits a refund of `refundedCents` takes back (proportional, all of them for a full refund). */
export const creditsToReverse = (p: { readonly credits: number; readonly grossCents: number; readonly refundedCents: number }): number =>
  p.refundedCents >= p.grossCents ? p.credits : Math.min(p.credits, Math.round((p.credits * p.refundedCents) / p.grossCents))

/** The payment repository (the Payment entity is its only writer). */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const select = sql`SELECT p.*, i.number AS invoice_number FROM payments p LEFT JOIN invoices i ON i.payment_id = p.payment_id`

  const get = (paymentId: string): Effect.Effect<PaymentRow | undefined, SqlError> =>
    Effect.map(sql<PaymentRecord>`${select} WHERE p.payment_id = ${paymentId}`, (rows) => (rows[0] ? toPayment(rows[0]) : undefined))

  /** Store a new payment (nothing when it exists: a redelivered Create). */
  const insert = (p: {
    readonly paymentId: string
    readonly userId: string
    readonly provider: ProviderName
    readonly packageId: string
    readonly packageName: string
    readonly credits: number
    readonly grossCents: number
    readonly currency: string
    readonly vatPercent: number
  }) => {
    const { netCents, vatCents } = split(p.grossCents, p.vatPercent)
    return sql`
      INSERT INTO payments (payment_id, user_id, provider, status, package_id, package_name, credits, net_cents, vat_cents, gross_cents, currency, vat_percent)
      VALUES (${p.paymentId}, ${p.userId}, ${p.provider}, 'created', ${p.packageId}, ${p.packageName}, ${p.credits}, ${netCents}, ${vatCents}, ${p.grossCents}, ${p.currency}, ${p.vatPercent})
      ON CONFLICT (payment_id) DO NOTHING`
  }

  const setCheckout = (paymentId: string, c: { readonly ref: string; readonly url: string; readonly expiresAt: Date | null }) =>
    sql`UPDATE payments SET provider_ref = ${c.ref}, checkout_url = ${c.url}, expires_at = ${c.expiresAt}, status = 'pending', updated_at = now()
        WHERE payment_id = ${paymentId} AND status = 'created'`

  /** Paid: from any state before it (money that arrives after an expiry still counts). */
  const markPaid = (paymentId: string, providerPaymentId: string) =>
    Effect.map(
      sql<{ payment_id: string }>`
        UPDATE payments SET status = 'paid', provider_payment_id = ${providerPaymentId}, paid_at = now(), failure_reason = NULL, updated_at = now()
        WHERE payment_id = ${paymentId} AND status IN ('created', 'pending', 'failed', 'expired') RETURNING payment_id`,
      (rows) => rows.length > 0
    )

  /** Failed or expired: only while nothing was paid. */
  const markClosed = (paymentId: string, status: "failed" | "expired", reason: string) =>
    sql`UPDATE payments SET status = ${status}, failure_reason = ${reason}, updated_at = now()
        WHERE payment_id = ${paymentId} AND status IN ('created', 'pending')`

  /** Record the total refunded so far (never goes down). */
  const recordRefund = (paymentId: string, refundedCents: number) =>
    sql`UPDATE payments SET refunded_cents = GREATEST(refunded_cents, ${refundedCents}::bigint), updated_at = now() WHERE payment_id = ${paymentId}`

  /** Credits taken back so far; the status becomes `refunded` once everything is. */
  const recordReversal = (paymentId: string, from: number, to: number) =>
    sql`UPDATE payments SET credits_reversed = ${to}::bigint,
          status = CASE WHEN ${to}::bigint >= credits AND refunded_cents >= gross_cents AND status = 'credited' THEN 'refunded' ELSE status END,
          updated_at = now()
        WHERE payment_id = ${paymentId} AND credits_reversed = ${from}::bigint`

  const touchPolled = (paymentId: string) => sql`UPDATE payments SET polled_at = now() WHERE payment_id = ${paymentId}`

  /**
   * `paid` → `credited` with the next invoice number of `series`, in one transaction (see the
   * module's comment). `undefined` when the payment was not `paid` (already done).
   */
  const credit = (paymentId: string, invoice: { readonly series: string; readonly prefix: string; readonly issuedAt: Date; readonly seller: unknown; readonly buyerSealed: Uint8Array }) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const moved = yield* sql<{ payment_id: string }>`
          UPDATE payments SET status = 'credited', credited_at = now(), updated_at = now()
          WHERE payment_id = ${paymentId} AND status = 'paid' RETURNING payment_id`
        if (moved.length === 0) return undefined
        yield* sql`INSERT INTO invoice_counters (series, last) VALUES (${invoice.series}, 0) ON CONFLICT (series) DO NOTHING`
        const [counter] = yield* sql<{ last: string }>`UPDATE invoice_counters SET last = last + 1 WHERE series = ${invoice.series} RETURNING last`
        const seq = Number(counter!.last)
        const number = `${invoice.prefix}-${invoice.series}-${String(seq).padStart(6, "0")}`
        yield* sql`
          INSERT INTO invoices (payment_id, number, series, seq, issued_at, seller, buyer_sealed)
          VALUES (${paymentId}, ${number}, ${invoice.series}, ${seq}, ${invoice.issuedAt}, ${JSON.stringify(invoice.seller)}::jsonb, ${invoice.buyerSealed})`
        return number
      })
    )

  return { get, insert, setCheckout, markPaid, markClosed, recordRefund, recordReversal, touchPolled, credit, sql }
})

// ---------------------------------------------------------------------------------------------
// Invoices

export interface InvoiceRow {
  readonly paymentId: string
  readonly number: string
  readonly issuedAt: Date
  readonly seller: unknown
  readonly buyerSealed: Uint8Array
  readonly blobKey: string | null
  readonly emailedAt: Date | null
  readonly mailAttempts: number
}

export const invoice = (paymentId: string): Effect.Effect<InvoiceRow | undefined, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ payment_id: string; number: string; issued_at: Date; seller: unknown; buyer_sealed: Uint8Array; blob_key: string | null; emailed_at: Date | null; mail_attempts: number }>`
        SELECT payment_id, number, issued_at, seller, buyer_sealed, blob_key, emailed_at, mail_attempts FROM invoices WHERE payment_id = ${paymentId}`,
      (rows) =>
        rows[0] && {
          paymentId: rows[0].payment_id,
          number: rows[0].number,
          issuedAt: new Date(rows[0].issued_at),
          seller: typeof rows[0].seller === "string" ? JSON.parse(rows[0].seller) : rows[0].seller,
          buyerSealed: rows[0].buyer_sealed instanceof Uint8Array ? rows[0].buyer_sealed : new Uint8Array(Buffer.from(rows[0].buyer_sealed as ArrayBuffer)),
          blobKey: rows[0].blob_key,
          emailedAt: rows[0].emailed_at ? new Date(rows[0].emailed_at) : null,
          mailAttempts: Number(rows[0].mail_attempts)
        }
    ))

export const markInvoiceStored = (paymentId: string, blobKey: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE invoices SET blob_key = ${blobKey}, stored_at = now() WHERE payment_id = ${paymentId}`)

export const markInvoiceEmailed = (paymentId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE invoices SET emailed_at = now(), mail_error = NULL WHERE payment_id = ${paymentId}`)

export const markMailFailed = (paymentId: string, error: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`UPDATE invoices SET mail_attempts = mail_attempts + 1, mail_error = ${error.slice(0, 500)} WHERE payment_id = ${paymentId}`)

// ---------------------------------------------------------------------------------------------
// Reads for the gateway and the poller

/** A user's payments, newest first; `before` is a creation time in ms. */
export const listByUser = (userId: string, options: { readonly limit: number; readonly before?: number | undefined }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<PaymentRecord>`
        SELECT p.*, i.number AS invoice_number FROM payments p LEFT JOIN invoices i ON i.payment_id = p.payment_id
        WHERE p.user_id = ${userId} ${options.before === undefined ? sql`` : sql`AND p.created_at < ${new Date(options.before)}`}
        ORDER BY p.created_at DESC LIMIT ${options.limit + 1}`,
      (rows) => rows.map(toPayment)
    ))

/** The payment a provider's checkout/order id or payment id belongs to. */
export const findByProviderId = (provider: ProviderName, ids: { readonly ref: string | null; readonly providerPaymentId: string | null }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ payment_id: string }>`
        SELECT payment_id FROM payments
        WHERE provider = ${provider} AND (provider_ref = ${ids.ref ?? ""} OR provider_payment_id = ${ids.providerPaymentId ?? ""})
        LIMIT 1`,
      (rows) => rows[0]?.payment_id
    ))

/**
 * Payments the poller should look at: pending ones without news for `pollAfterMs` (a webhook
 * may be lost), and any whose later steps (credits, invoice, mail, a refund's reversal) did not
 * finish within a few seconds (the runner died, the mail server was down); with `refunds`, credited
 * payments not asked for `everyMs`, up to `windowMs` after they were credited (a refund whose
 * webhook was lost). Open payments come first.
 */
export const due = (options: {
  readonly pollAfterMs: number
  readonly maxMailAttempts: number
  readonly limit: number
  readonly refunds?: { readonly everyMs: number; readonly windowMs: number } | undefined
}) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const stale = new Date(Date.now() - options.pollAfterMs)
    const settled = new Date(Date.now() - 5_000)
    const refunds = options.refunds
      ? sql`OR (p.status = 'credited' AND p.credited_at > ${new Date(Date.now() - options.refunds.windowMs)}
              AND GREATEST(p.polled_at, p.credited_at) < ${new Date(Date.now() - options.refunds.everyMs)})`
      : sql``
    return Effect.map(
      sql<{ payment_id: string }>`
        SELECT p.payment_id FROM payments p LEFT JOIN invoices i ON i.payment_id = p.payment_id
        WHERE (p.status IN ('created', 'pending') AND COALESCE(p.polled_at, p.updated_at) < ${stale})
           OR (p.status = 'paid' AND p.updated_at < ${settled})
           OR (p.status IN ('credited', 'refunded') AND p.updated_at < ${settled} AND (
                 i.blob_key IS NULL
                 OR (i.emailed_at IS NULL AND i.mail_attempts < ${options.maxMailAttempts})
                 OR (p.refunded_cents > 0 AND p.credits_reversed < LEAST(p.credits, CASE WHEN p.refunded_cents >= p.gross_cents THEN p.credits
                       ELSE ROUND(p.credits::numeric * p.refunded_cents / p.gross_cents)::bigint END))))
           ${refunds}
        ORDER BY (p.status IN ('created', 'pending', 'paid')) DESC, p.updated_at LIMIT ${options.limit}`,
      (rows) => rows.map((r) => r.payment_id)
    )
  })
