/**
 * A circuit breaker for one provider. Closed: requests go through; `failures` consecutive
 * failures (errors or timeouts) open it. Open: the provider is skipped for `cooldown`. Then
 * half-open: exactly one request is let through as a trial; its success closes the breaker, its
 * failure opens it for another cool-down. A trial that ends with neither (the turn was cancelled)
 * frees the slot for the next request.
 *
 * Plain synchronous state: every method runs to completion on the event loop, so no lock is needed.
 */
import * as Duration from "effect/Duration"
import type { BreakerSettings } from "./Settings.ts"

export type BreakerState = "closed" | "open" | "half_open"

/** What `acquire` decided. */
export type Admission = "pass" | "trial" | "rejected"

/** A breaker's state for admins. */
export interface BreakerSnapshot {
  readonly state: BreakerState
  readonly consecutiveFailures: number
  /** When an open breaker lets its trial request through. */
  readonly retryAt: Date | null
  readonly lastError: string | null
  readonly lastFailureAt: Date | null
  readonly lastSuccessAt: Date | null
  readonly successes: number
  readonly failures: number
}

export interface Breaker {
  /** May a request go to the provider now? `trial` takes the half-open slot. */
  readonly acquire: (now?: number) => Admission
  readonly succeeded: () => void
  readonly failed: (error: string, now?: number) => void
  /** A request admitted by `acquire` ended without a verdict (cancelled). */
  readonly abandoned: (admission: Admission) => void
  readonly snapshot: (now?: number) => BreakerSnapshot
}

/** A closed breaker. */
export const make = (settings: BreakerSettings): Breaker => {
  const cooldownMs = Duration.toMillis(settings.cooldown)
  let consecutive = 0
  let openedAt: number | null = null
  let trialRunning = false
  let lastError: string | null = null
  let lastFailureAt: number | null = null
  let lastSuccessAt: number | null = null
  let successes = 0
  let failures = 0

  const state = (now: number): BreakerState =>
    openedAt === null ? "closed" : now - openedAt >= cooldownMs ? "half_open" : "open"

  return {
    acquire: (now = Date.now()) => {
      switch (state(now)) {
        case "closed":
          return "pass"
        case "open":
          return "rejected"
        case "half_open":
          if (trialRunning) return "rejected"
          trialRunning = true
          return "trial"
      }
    },
    succeeded: () => {
      consecutive = 0
      openedAt = null
      trialRunning = false
      successes++
      lastSuccessAt = Date.now()
    },
    failed: (error, now = Date.now()) => {
      consecutive++
      failures++
      lastError = error
      lastFailureAt = now
      if (trialRunning || consecutive >= settings.failures) openedAt = now
      trialRunning = false
    },
    abandoned: (admission) => {
      if (admission === "trial") trialRunning = false
    },
    snapshot: (now = Date.now()) => ({
      state: state(now),
      consecutiveFailures: consecutive,
      retryAt: openedAt === null ? null : new Date(openedAt + cooldownMs),
      lastError,
      lastFailureAt: lastFailureAt === null ? null : new Date(lastFailureAt),
      lastSuccessAt: lastSuccessAt === null ? null : new Date(lastSuccessAt),
      successes,
      failures
    })
  }
}
