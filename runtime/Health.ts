/**
 * Health checks. Each part of a process (database, cache, blob store, cluster, worker pools)
 * registers a check; `/health` answers 200 when all pass and 503 naming the ones that failed;
 * `/health/detailed` adds latencies and each part's own details.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** One registered check. `details` adds figures to `/health/detailed` (cache sizes, pools). */
export interface HealthCheck {
  readonly name: string
  readonly check: Effect.Effect<void, unknown>
  readonly details?: Effect.Effect<Record<string, unknown>, unknown>
}

/** The result of one check. */
export interface CheckResult {
  readonly status: "healthy" | "unhealthy"
  readonly latency_ms: number
  readonly error?: string
  readonly details?: Record<string, unknown>
}

/** The overall report. */
export interface HealthReport {
  readonly status: "healthy" | "unhealthy"
  readonly failed: ReadonlyArray<string>
  readonly checks: Record<string, CheckResult>
}

/** The registry of checks of this process. */
export class Health extends Context.Tag("troupe/runtime/Health")<Health, {
  readonly register: (check: HealthCheck) => Effect.Effect<void>
  readonly run: (options: { readonly detailed: boolean }) => Effect.Effect<HealthReport>
}>() {}

const describe = (e: unknown): string => {
  if (typeof e === "object" && e !== null) {
    const m = (e as { message?: unknown }).message
    if (typeof m === "string" && m.length > 0) return m
    const tag = (e as { _tag?: unknown })._tag
    if (typeof tag === "string") return tag
  }
  return String(e)
}

/** A fresh registry; `timeout` bounds each check. */
export const layer = (options: { readonly timeout?: Duration.DurationInput } = {}): Layer.Layer<Health> =>
  Layer.sync(Health, () => {
    const checks: Array<HealthCheck> = []
    const timeout = options.timeout ?? "3 seconds"
    const runOne = (c: HealthCheck, detailed: boolean) =>
      Effect.gen(function*() {
        const start = performance.now()
        const outcome = yield* c.check.pipe(
          Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out after ${Duration.format(timeout)}`) }),
          Effect.either
        )
        const latency_ms = Math.round((performance.now() - start) * 100) / 100
        const details = detailed && c.details
          ? yield* c.details.pipe(Effect.timeout(timeout), Effect.orElseSucceed(() => undefined))
          : undefined
        const result: CheckResult = outcome._tag === "Right"
          ? { status: "healthy", latency_ms, ...(details ? { details } : {}) }
          : { status: "unhealthy", latency_ms, error: describe(outcome.left), ...(details ? { details } : {}) }
        return [c.name, result] as const
      }).pipe(Effect.catchAllDefect((defect) => Effect.succeed([c.name, { status: "unhealthy" as const, latency_ms: 0, error: describe(defect) }] as const)))
    return {
      register: (check) => Effect.sync(() => void checks.push(check)),
      run: ({ detailed }) =>
        Effect.forEach(checks, (c) => runOne(c, detailed), { concurrency: "unbounded" }).pipe(
          Effect.map((results): HealthReport => {
            const failed = results.filter(([, r]) => r.status === "unhealthy").map(([n]) => n)
            return { status: failed.length === 0 ? "healthy" : "unhealthy", failed, checks: Object.fromEntries(results) }
          })
        )
    }
  })

/** Register a check while building a layer. */
export const register = (check: HealthCheck): Effect.Effect<void, never, Health> => Effect.flatMap(Health, (h) => h.register(check))
