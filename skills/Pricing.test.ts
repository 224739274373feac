import * as Either from "effect/Either"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { Pricing as PricingModel } from "./manifest/Manifest.ts"
import * as Pricing from "./Pricing.ts"

const limits = { timeoutMs: 10_000, maxOutputBytes: 4000 }

describe("pricing", () => {
  it("charges a fixed price per call", () => {
    const p: PricingModel = { model: "fixed", credits: 2.5 }
    expect(Pricing.estimate(p, { inputBytes: 10, units: 0, limits })).toBe(3)
    expect(Pricing.price(p, { durationMs: 5, inputBytes: 10, outputBytes: 10 }, limits)).toBe(3)
  })

  it("reads units from the input for per-unit prices and refuses too many", () => {
    const p: PricingModel = { model: "per_unit", unit: "url", creditsPerUnit: 0.5, unitsFrom: "urls", maxUnits: 10 }
    expect(Pricing.unitsOf(p, { urls: ["a", "b", "c"] })).toEqual(Either.right(3))
    expect(Pricing.estimate(p, { inputBytes: 0, units: 3, limits })).toBe(2)
    expect(Either.isLeft(Pricing.unitsOf(p, { urls: "x" }))).toBe(true)
    expect(Either.isLeft(Pricing.unitsOf(p, { urls: Array(11).fill("u") }))).toBe(true)
    expect(Pricing.unitsOf({ ...p, unitsFrom: "options.count" }, { options: { count: 4 } })).toEqual(Either.right(4))
  })

  it("reserves the whole timeout for per-second prices and charges what was used", () => {
    const p: PricingModel = { model: "per_second", creditsPerSecond: 1, minimumCredits: 1 }
    expect(Pricing.estimate(p, { inputBytes: 0, units: 0, limits })).toBe(10)
    expect(Pricing.price(p, { durationMs: 2300, inputBytes: 0, outputBytes: 0 }, limits)).toBe(3)
    expect(Pricing.price(p, { durationMs: 10, inputBytes: 0, outputBytes: 0 }, limits)).toBe(1)
  })

  it("prices tokens from bytes unless the skill reports them", () => {
    const p: PricingModel = { model: "tokens", creditsPer1kInput: 1, creditsPer1kOutput: 2 }
    expect(Pricing.estimate(p, { inputBytes: 8000, units: 0, limits })).toBe(4)
    expect(Pricing.price(p, { durationMs: 1, inputBytes: 8000, outputBytes: 400 }, limits)).toBe(3)
    expect(Pricing.price(p, { durationMs: 1, inputBytes: 8000, outputBytes: 400, inputTokens: 500, outputTokens: 100 }, limits)).toBe(1)
  })

  it("never charges more than the estimate, nor a negative amount", () => {
    const pricing = fc.oneof(
      fc.record({ model: fc.constant("fixed" as const), credits: fc.double({ min: 0, max: 1e6, noNaN: true }) }),
      fc.record({ model: fc.constant("per_second" as const), creditsPerSecond: fc.double({ min: 0, max: 100, noNaN: true }) }),
      fc.record({
        model: fc.constant("tokens" as const),
        creditsPer1kInput: fc.double({ min: 0, max: 100, noNaN: true }),
        creditsPer1kOutput: fc.double({ min: 0, max: 100, noNaN: true })
      })
    )
    fc.assert(fc.property(pricing, fc.nat(20_000), fc.nat(100_000), fc.nat(100_000), fc.nat(100_000), (p, duration, inputBytes, outputBytes, tokens) => {
      const usage = { durationMs: duration, inputBytes, outputBytes, outputTokens: tokens }
      const charged = Pricing.price(p, usage, limits)
      expect(charged).toBeGreaterThanOrEqual(0)
      expect(Number.isInteger(charged)).toBe(true)
      expect(charged).toBeLessThanOrEqual(Pricing.estimate(p, { inputBytes, units: 0, limits }))
    }))
  })
})
