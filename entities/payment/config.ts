/**
 * Payment settings, read with `Config` where a role is assembled (runners for the workflow and
 * the poller, gateways for checkouts' webhooks): the provider and its keys, the poller's timing,
 * where buyers return to, and the seller printed on invoices.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Provider from "./provider.ts"
import * as Revolut from "./revolut.ts"
import * as Stripe from "./stripe.ts"

/** The seller as printed on invoices. */
export interface Seller {
  readonly name: string
  /** Address lines. */
  readonly address: ReadonlyArray<string>
  readonly vatId: string | null
  readonly email: string | null
}

/** The configured provider. */
export type ProviderSettings =
  | { readonly _tag: "manual" }
  | ({ readonly _tag: "stripe" } & Stripe.StripeSettings)
  | ({ readonly _tag: "revolut" } & Revolut.RevolutSettings)

export interface PaymentSettings {
  readonly provider: ProviderSettings
  /** How often the poller looks for payments to check or finish. */
  readonly pollInterval: Duration.Duration
  /** A pending payment without news for this long is checked with the provider. */
  readonly pollAfter: Duration.Duration
  /** A credited payment is asked for refunds this often (providers that report them: Revolut)… */
  readonly refundPoll: Duration.Duration
  /** …for this long after it was credited. */
  readonly refundWindow: Duration.Duration
  /** Where the buyer returns after the checkout (`?payment_id=…` is added); none: `<public url>/credits`. */
  readonly returnUrl: Option.Option<string>
  readonly seller: Seller
  /** Invoice numbers are `<prefix>-<year>-<000001>`. */
  readonly invoicePrefix: string
}

/** The payment settings service. */
export class PaymentConfig extends Context.Tag("troupe/entities/payment/PaymentConfig")<PaymentConfig, PaymentSettings>() {}

const url = (name: string, fallback: string) =>
  Config.string(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail((value) => {
      try {
        const u = new URL(value)
        if (u.protocol === "http:" || u.protocol === "https:") return Either.right(u.toString().replace(/\/$/, ""))
      } catch {
        // fall through
      }
      return Either.left(ConfigError.InvalidData([name], "must be an http(s) URL"))
    })
  )

const provider: Effect.Effect<ProviderSettings, ConfigError.ConfigError> = Config.literal("stripe", "revolut", "manual")("TROUPE_PAYMENTS_PROVIDER").pipe(
  Config.withDefault("manual" as const),
  Effect.flatMap((name): Config.Config<ProviderSettings> => {
    switch (name) {
      case "stripe":
        return Config.all({
          secretKey: Config.redacted("STRIPE_SECRET_KEY"),
          webhookSecret: Config.redacted("STRIPE_WEBHOOK_SECRET"),
          apiBase: url("STRIPE_API_BASE", "https://api.stripe.com")
        }).pipe(Config.map((s) => ({ _tag: "stripe" as const, ...s })))
      case "revolut":
        return Config.all({
          apiKey: Config.redacted("REVOLUT_API_KEY"),
          webhookSecret: Config.redacted("REVOLUT_WEBHOOK_SECRET"),
          apiBase: url("REVOLUT_API_BASE", "https://merchant.revolut.com")
        }).pipe(Config.map((s) => ({ _tag: "revolut" as const, ...s })))
      case "manual":
        return Config.succeed({ _tag: "manual" as const })
    }
  })
)

const optionalText = (name: string) => Config.option(Config.string(name)).pipe(Config.map((o) => Option.getOrNull(Option.filter(o, (s) => s.trim().length > 0))))

/**
 * `TROUPE_PAYMENTS_PROVIDER` (`stripe` | `revolut` | `manual`), `STRIPE_*`, `REVOLUT_*`,
 * `TROUPE_PAYMENTS_POLL_INTERVAL`, `TROUPE_PAYMENTS_POLL_AFTER`, `TROUPE_PAYMENTS_REFUND_POLL`,
 * `TROUPE_PAYMENTS_REFUND_WINDOW`, `TROUPE_PAYMENTS_RETURN_URL`,
 * `TROUPE_SELLER_NAME`, `TROUPE_SELLER_ADDRESS` (lines separated by `|` or newlines),
 * `TROUPE_SELLER_VAT_ID`, `TROUPE_SELLER_EMAIL`, `TROUPE_INVOICE_PREFIX`.
 */
export const config: Effect.Effect<PaymentSettings, ConfigError.ConfigError> = Effect.all({
  provider,
  pollInterval: Config.duration("TROUPE_PAYMENTS_POLL_INTERVAL").pipe(Config.withDefault(Duration.seconds(30))),
  pollAfter: Config.duration("TROUPE_PAYMENTS_POLL_AFTER").pipe(Config.withDefault(Duration.minutes(2))),
  refundPoll: Config.duration("TROUPE_PAYMENTS_REFUND_POLL").pipe(Config.withDefault(Duration.hours(6))),
  refundWindow: Config.duration("TROUPE_PAYMENTS_REFUND_WINDOW").pipe(Config.withDefault(Duration.days(120))),
  returnUrl: Config.option(url("TROUPE_PAYMENTS_RETURN_URL", "http://localhost")),
  seller: Config.all({
    name: Config.string("TROUPE_SELLER_NAME").pipe(Config.withDefault("Troupe")),
    address: Config.string("TROUPE_SELLER_ADDRESS").pipe(
      Config.withDefault(""),
      Config.map((s) => s.split(/\||\n/).map((l) => l.trim()).filter((l) => l.length > 0))
    ),
    vatId: optionalText("TROUPE_SELLER_VAT_ID"),
    email: optionalText("TROUPE_SELLER_EMAIL")
  }),
  invoicePrefix: Config.string("TROUPE_INVOICE_PREFIX").pipe(
    Config.withDefault("INV"),
    Config.mapOrFail((p) => (/^[A-Z0-9]{1,10}$/i.test(p) ? Either.right(p.toUpperCase()) : Either.left(ConfigError.InvalidData(["TROUPE_INVOICE_PREFIX"], "must be 1-10 letters or digits"))))
  )
})

/** Every environment variable the payments read. */
export const variables: ReadonlyArray<string> = [
  "TROUPE_PAYMENTS_PROVIDER", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "REVOLUT_API_KEY",
  "REVOLUT_WEBHOOK_SECRET", "REVOLUT_API_BASE", "TROUPE_PAYMENTS_POLL_INTERVAL", "TROUPE_PAYMENTS_POLL_AFTER",
  "TROUPE_PAYMENTS_REFUND_POLL", "TROUPE_PAYMENTS_REFUND_WINDOW",
  "TROUPE_PAYMENTS_RETURN_URL", "TROUPE_SELLER_NAME", "TROUPE_SELLER_ADDRESS", "TROUPE_SELLER_VAT_ID", "TROUPE_SELLER_EMAIL",
  "TROUPE_INVOICE_PREFIX"
]

/** The provider chosen by the settings. */
export const makeProvider = (settings: ProviderSettings): Provider.PaymentProviderService => {
  switch (settings._tag) {
    case "stripe":
      return Stripe.make(settings)
    case "revolut":
      return Revolut.make(settings)
    case "manual":
      return Provider.manual
  }
}

/** The settings from the environment. */
export const layer: Layer.Layer<PaymentConfig, ConfigError.ConfigError> = Layer.effect(PaymentConfig, config)

/** The provider of the settings. */
export const layerProvider: Layer.Layer<Provider.PaymentProvider, never, PaymentConfig> = Layer.effect(
  Provider.PaymentProvider,
  Effect.map(PaymentConfig, (settings) => makeProvider(settings.provider))
)
