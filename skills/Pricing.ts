/**
 * One pricing model for every skill, WASM or first-party. Before a call the gateway reserves
 * `estimate` (an upper bound); after it, it settles `price` of the measured usage, which never
 * exceeds the estimate. Credits are whole numbers: fractions round up.
 */
import * as Either from "effect/Either"
import type { Limits, Pricing } from "./manifest/Manifest.ts"

/** What a call used. */
export interface Usage {
  readonly durationMs: number
  readonly inputBytes: number
  readonly outputBytes: number
  /** per_unit: units read from the input. */
  readonly units?: number | undefined
  /** tokens: as reported by the skill, or estimated from bytes. */
  readonly inputTokens?: number | undefined
  readonly outputTokens?: number | undefined
}

/** About four bytes of UTF-8 per token. */
export const tokensOfBytes = (bytes: number): number => Math.ceil(bytes / 4)

const whole = (credits: number): number => {
  const rounded = Math.ceil(credits - 1e-9)
  return rounded > 0 ? rounded : 0
}

const at = (value: unknown, path: string): unknown => {
  let current = value
  for (const key of path.split(".")) {
    if (current === null || typeof current !== "object") return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return current
}

/** per_unit: the number of units the input asks for (a number, or an array's length, at `unitsFrom`). */
export const unitsOf = (pricing: Pricing, input: unknown): Either.Either<number, string> => {
  if (pricing.model !== "per_unit") return Either.right(0)
  const value = at(input, pricing.unitsFrom)
  const units = Array.isArray(value) ? value.length : typeof value === "number" ? value : undefined
  if (units === undefined || !Number.isFinite(units) || units < 0) {
    return Either.left(`${pricing.unitsFrom} must be a number ≥ 0 or an array (it counts the ${pricing.unit}s to price)`)
  }
  const count = Math.ceil(units)
  if (pricing.maxUnits !== undefined && count > pricing.maxUnits) {
    return Either.left(`${pricing.unitsFrom} asks for ${count} ${pricing.unit}s; at most ${pricing.maxUnits} per call`)
  }
  return Either.right(count)
}

/** The most a call can cost, to reserve before running it. */
export const estimate = (
  pricing: Pricing,
  request: { readonly inputBytes: number; readonly units: number; readonly limits: Pick<Limits, "timeoutMs" | "maxOutputBytes"> }
): number => {
  switch (pricing.model) {
    case "fixed":
      return whole(pricing.credits)
    case "per_unit":
      return whole(request.units * pricing.creditsPerUnit)
    case "per_second":
      return whole(Math.max((request.limits.timeoutMs / 1000) * pricing.creditsPerSecond, pricing.minimumCredits ?? 0))
    case "tokens": {
      const output = pricing.maxOutputTokens ?? tokensOfBytes(request.limits.maxOutputBytes)
      return whole((tokensOfBytes(request.inputBytes) / 1000) * pricing.creditsPer1kInput + (output / 1000) * pricing.creditsPer1kOutput)
    }
  }
}

/** What a call costs given its usage (never more than its estimate). */
export const price = (pricing: Pricing, usage: Usage, limits: Pick<Limits, "timeoutMs" | "maxOutputBytes">): number => {
  const ceiling = estimate(pricing, { inputBytes: usage.inputBytes, units: usage.units ?? 0, limits })
  let credits: number
  switch (pricing.model) {
    case "fixed":
      credits = pricing.credits
      break
    case "per_unit":
      credits = (usage.units ?? 0) * pricing.creditsPerUnit
      break
    case "per_second":
      credits = Math.max((usage.durationMs / 1000) * pricing.creditsPerSecond, pricing.minimumCredits ?? 0)
      break
    case "tokens":
      credits = ((usage.inputTokens ?? tokensOfBytes(usage.inputBytes)) / 1000) * pricing.creditsPer1kInput +
        ((usage.outputTokens ?? tokensOfBytes(usage.outputBytes)) / 1000) * pricing.creditsPer1kOutput
      break
  }
  return Math.min(whole(credits), ceiling)
}

/** A short text for listings: `2 credits per call`, `0.5 credits per url`. */
export const describe = (pricing: Pricing): string => {
  const n = (x: number) => `${x} credit${x === 1 ? "" : "s"}`
  switch (pricing.model) {
    case "fixed":
      return `${n(pricing.credits)} per call`
    case "per_unit":
      return `${n(pricing.creditsPerUnit)} per ${pricing.unit}`
    case "per_second":
      return `${n(pricing.creditsPerSecond)} per second${pricing.minimumCredits ? ` (minimum ${n(pricing.minimumCredits)})` : ""}`
    case "tokens":
      return `${n(pricing.creditsPer1kInput)} per 1000 input tokens, ${n(pricing.creditsPer1kOutput)} per 1000 output tokens`
  }
}
