/** Handlers of `/v1/admin/providers` and `/v1/admin/models/*`. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Prices } from "../../skills/ai/Prices.ts"
import * as Status from "../../skills/ai/Status.ts"
import type * as Breaker from "../../skills/ai/Breaker.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import * as Errors from "../Errors.ts"
import * as Policy from "../Policy.ts"
import { noContent } from "./common.ts"

/** A snapshot as it comes back from the cache (dates as ISO strings). */
type Reported = { readonly [K in keyof Breaker.BreakerSnapshot]: Breaker.BreakerSnapshot[K] extends Date | null ? string | null : Breaker.BreakerSnapshot[K] }

const time = (t: unknown): string | null => (t === null || t === undefined ? null : t instanceof Date ? t.toISOString() : String(t))

const health = (h: Reported) => ({
  state: h.state,
  consecutive_failures: h.consecutiveFailures,
  retry_at: time(h.retryAt),
  last_error: h.lastError,
  last_failure_at: time(h.lastFailureAt),
  last_success_at: time(h.lastSuccessAt),
  successes: h.successes,
  failures: h.failures
})

const unavailable = (e: unknown) => new Errors.ApiFailure({ status: 503, code: "unavailable", message: `The price table is unavailable: ${e instanceof Error ? e.message : String(e)}` })

export const layer = HttpApiBuilder.group(TroupeApi, "llm", (handlers) =>
  Effect.gen(function*() {
    const prices = yield* Prices
    const admin = Effect.flatMap(CurrentPrincipal, (principal) => Policy.require(principal, Policy.Admin))
    return handlers
      .handle("providers", () =>
        Effect.gen(function*() {
          yield* admin
          const reports = yield* Status.reports
          const newest = reports[0]
          return {
            summary: newest?.summary ?? "LLM: none configured",
            providers: (newest?.providers ?? []).map((p) => ({
              name: p.name,
              base_url: p.baseUrl,
              api_key_env: p.apiKeyEnv,
              api_key_set: p.apiKeySet,
              priority: p.priority,
              source: p.source,
              models: p.models.map((m) => ({ name: m.name, family: m.family, context_window: m.contextWindow, max_output_tokens: m.maxOutputTokens })),
              timeouts: { first_token_ms: p.timeouts.firstTokenMs, idle_ms: p.timeouts.idleMs, total_ms: p.timeouts.totalMs },
              health: health(p.health as unknown as Reported),
              runners: reports.flatMap((r) =>
                r.providers.filter((q) => q.name === p.name).map((q) => ({ instance: r.instance, reported_at: r.at, ...health(q.health as unknown as Reported) }))
              )
            }))
          }
        }))
      .handle("prices", () =>
        Effect.gen(function*() {
          yield* admin
          const list = yield* Effect.mapError(prices.list, unavailable)
          return { default: prices.defaultPrice, prices: list.map((p) => ({ model: p.model, input: p.input, output: p.output, updated_at: p.updatedAt })) }
        }))
      .handle("setPrice", ({ path, payload }) =>
        Effect.gen(function*() {
          yield* admin
          const p = yield* Effect.mapError(prices.set(path.model, payload), unavailable)
          yield* Effect.logInfo("LLM price set").pipe(Effect.annotateLogs({ model: p.model, input: p.input, output: p.output }))
          return { model: p.model, input: p.input, output: p.output, updated_at: p.updatedAt }
        }))
      .handle("removePrice", ({ path }) =>
        Effect.gen(function*() {
          yield* admin
          const removed = yield* Effect.mapError(prices.remove(path.model), unavailable)
          if (!removed) return yield* Errors.fail(404, "price_not_found", `The model ${path.model} has no price of its own`)
          return noContent()
        }))
  }))
