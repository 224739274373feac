/**
 * The model price table: credits per 1,000 input and output tokens, per model, in SQL
 * (`troupe_llm_prices`), edited by admins (`PUT /v1/admin/models/{model}/price`). A model without a
 * price costs the default (`TROUPE_LLM_DEFAULT_PRICE`, 1 / 2). A turn's charge is the sum over
 * its model requests, rounded up to whole credits once.
 *
 * Turns read the table through a cache refreshed every few seconds, so a price set on one process
 * applies everywhere within that time (at once on the process that set it).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { Migration } from "../../runtime/Migrations.ts"
import { defaultPriceFromEnv, type Price } from "./Settings.ts"

/** Credits per 1,000 tokens: at least 0, at most 1,000,000, finite. */
export const Rate = Schema.Number.pipe(Schema.finite(), Schema.between(0, 1_000_000))

/** A model's price as set by an admin. */
export interface ModelPrice extends Price {
  readonly model: string
  readonly updatedAt: Date
}

/** Tokens a turn used. */
export interface TokenUsage {
  readonly inputTokens: number
  readonly outputTokens: number
}

/** Credits for `usage` at `price` (fractional; round the turn's total up once). */
export const creditsOf = (price: Price, usage: TokenUsage): number =>
  (usage.inputTokens / 1000) * price.input + (usage.outputTokens / 1000) * price.output

/** Whole credits: fractions round up (a tiny float error does not add a credit). */
export const whole = (credits: number): number => {
  const rounded = Math.ceil(credits - 1e-9)
  return rounded > 0 ? rounded : 0
}

export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026120760,
    name: "llm_prices",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`CREATE TABLE IF NOT EXISTS troupe_llm_prices (
        model TEXT PRIMARY KEY,
        input_per_1k DOUBLE PRECISION NOT NULL,
        output_per_1k DOUBLE PRECISION NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`)
  }
]

/** The service. */
export class Prices extends Context.Tag("troupe/skills/ai/Prices")<Prices, {
  readonly defaultPrice: Price
  /** The price of `model` (the default when none is set). */
  readonly priceOf: (model: string) => Effect.Effect<Price>
  readonly list: Effect.Effect<ReadonlyArray<ModelPrice>, SqlError>
  readonly set: (model: string, price: Price) => Effect.Effect<ModelPrice, SqlError>
  /** Back to the default. */
  readonly remove: (model: string) => Effect.Effect<boolean, SqlError>
}>() {}

interface Row {
  readonly model: string
  readonly input_per_1k: number | string
  readonly output_per_1k: number | string
  readonly updated_at: Date | string
}

const toPrice = (r: Row): ModelPrice => ({
  model: r.model,
  input: Number(r.input_per_1k),
  output: Number(r.output_per_1k),
  updatedAt: r.updated_at instanceof Date ? r.updated_at : new Date(r.updated_at)
})

/** The table in SQL (run `migrations` first), cached for `refresh`. */
export const layerSql = (defaultPrice: Price, refresh: Duration.DurationInput = "5 seconds"): Layer.Layer<Prices, never, SqlClient.SqlClient> =>
  Layer.effect(
    Prices,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const refreshMs = Duration.toMillis(refresh)
      let cache = new Map<string, Price>()
      let loadedAt = Number.NEGATIVE_INFINITY
      const list = Effect.map(sql<Row>`SELECT model, input_per_1k, output_per_1k, updated_at FROM troupe_llm_prices ORDER BY model`, (rows) => rows.map(toPrice))
      const load = Effect.map(list, (prices) => {
        cache = new Map(prices.map((p) => [p.model, { input: p.input, output: p.output }]))
        loadedAt = Date.now()
      })
      return Prices.of({
        defaultPrice,
        priceOf: (model) =>
          Effect.suspend(() => (Date.now() - loadedAt < refreshMs ? Effect.void : load)).pipe(
            // the table unreadable for a moment: the last known prices (or the default) still bill
            Effect.catchAll((e) => Effect.logWarning("LLM price table unreadable; using the last known prices", e)),
            Effect.map(() => cache.get(model) ?? defaultPrice)
          ),
        list,
        set: (model, price) =>
          Effect.gen(function*() {
            const rows = yield* sql<Row>`INSERT INTO troupe_llm_prices (model, input_per_1k, output_per_1k, updated_at)
              VALUES (${model}, ${price.input}, ${price.output}, now())
              ON CONFLICT (model) DO UPDATE SET input_per_1k = EXCLUDED.input_per_1k, output_per_1k = EXCLUDED.output_per_1k, updated_at = now()
              RETURNING model, input_per_1k, output_per_1k, updated_at`
            yield* load
            return toPrice(rows[0]!)
          }),
        remove: (model) =>
          Effect.gen(function*() {
            const rows = yield* sql<{ readonly model: string }>`DELETE FROM troupe_llm_prices WHERE model = ${model} RETURNING model`
            yield* load
            return rows.length > 0
          })
      })
    })
  )

/** The table in SQL with the default price from `TROUPE_LLM_DEFAULT_PRICE`. */
export const layerFromEnv: Layer.Layer<Prices, ConfigError.ConfigError, SqlClient.SqlClient> = Layer.unwrapEffect(
  Effect.map(defaultPriceFromEnv, (price) => layerSql(price))
)

/** A fixed table in memory (tests). */
export const layerMemory = (defaultPrice: Price, prices: Readonly<Record<string, Price>> = {}): Layer.Layer<Prices> =>
  Layer.sync(Prices, () => {
    const table = new Map<string, ModelPrice>(Object.entries(prices).map(([model, p]) => [model, { model, ...p, updatedAt: new Date() }]))
    return Prices.of({
      defaultPrice,
      priceOf: (model) => Effect.sync(() => table.get(model) ?? defaultPrice),
      list: Effect.sync(() => [...table.values()]),
      set: (model, price) =>
        Effect.sync(() => {
          const p = { model, ...price, updatedAt: new Date() }
          table.set(model, p)
          return p
        }),
      remove: (model) => Effect.sync(() => table.delete(model))
    })
  })
