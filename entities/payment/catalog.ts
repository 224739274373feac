/**
 * What the gateway asks of payments besides the Payment entity: the credit packages admins
 * configure (plain rows, no actor: only admins write them and a payment freezes what it bought),
 * a user's payment history, and which payment a provider's event is about.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Ids from "../../runtime/Ids.ts"
import { PackageSnapshot } from "./protocol.ts"
import type { PaymentProviderService } from "./provider.ts"
import * as Repo from "./repo.ts"

export type { PackageRow, PaymentRow } from "./repo.ts"
/** Net and VAT of a gross price (prices include VAT), in minor units. */
export { split } from "./repo.ts"

/** The package does not exist (or is archived). */
export class PackageNotFound extends Schema.TaggedError<PackageNotFound>()("PackageNotFound", {
  packageId: Schema.String
}) {}

/** A new package's fields. */
export interface NewPackage {
  readonly name: string
  readonly credits: number
  readonly priceCents: number
  readonly currency: string
  readonly vatPercent: number
}

/** A new payment id (`pay_…`). */
export const newPaymentId = (): string => Ids.make("pay_")

/** Active packages, cheapest first. */
export const packages = (): Effect.Effect<ReadonlyArray<Repo.PackageRow>, SqlError, SqlClient.SqlClient> => Repo.listPackages({ includeArchived: false })

/** An active package. */
export const activePackage = (id: string): Effect.Effect<Repo.PackageRow, PackageNotFound | SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(Repo.getPackage(id), (p) => (p && p.active ? Effect.succeed(p) : Effect.fail(new PackageNotFound({ packageId: id }))))

/** What a payment for `p` freezes. */
export const snapshot = (p: Repo.PackageRow): PackageSnapshot =>
  new PackageSnapshot({ id: p.id, name: p.name, credits: p.credits, priceCents: p.priceCents, currency: p.currency, vatPercent: p.vatPercent })

export const createPackage = (p: NewPackage) => Repo.insertPackage({ id: Ids.make("pkg_"), ...p })

export const updatePackage = (id: string, patch: Partial<NewPackage>): Effect.Effect<Repo.PackageRow, PackageNotFound | SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(Repo.updatePackage(id, patch), (p) => (p ? Effect.succeed(p) : Effect.fail(new PackageNotFound({ packageId: id }))))

/** Archive a package: no new payments for it; old ones keep their snapshot. */
export const deletePackage = (id: string): Effect.Effect<void, PackageNotFound | SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(Repo.archivePackage(id), (done) => (done ? Effect.void : Effect.fail(new PackageNotFound({ packageId: id }))))

/** A user's payments, newest first, and the cursor of the next page. */
export const history = (userId: string, options: { readonly limit: number; readonly before?: number | undefined }) =>
  Effect.map(Repo.listByUser(userId, options), (rows) => {
    const page = rows.slice(0, options.limit)
    return { payments: page, next: rows.length > options.limit ? page[page.length - 1]!.createdAt.getTime() : null }
  })

/**
 * The payment a provider's event is about: the id it carries, else the payment that recorded the
 * provider's ids, else (an event that overtook the one that told us the provider's payment id)
 * the id the provider keeps in that payment's metadata.
 */
export const resolve = (provider: PaymentProviderService, event: { readonly paymentId: string | null; readonly ref: string | null; readonly providerPaymentId: string | null }) =>
  Effect.gen(function*() {
    if (event.paymentId !== null) return event.paymentId
    if (event.ref === null && event.providerPaymentId === null) return undefined
    const found = yield* Repo.findByProviderId(provider.name, event)
    if (found !== undefined || event.providerPaymentId === null) return found
    return (yield* provider.paymentIdOf(event.providerPaymentId)) ?? undefined
  })
