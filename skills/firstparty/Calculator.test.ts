import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { CalculationError, evaluate } from "./Calculator.ts"

describe("math.calculate expressions", () => {
  it.each([
    ["1 + 2 * 3", 7],
    ["(1 + 2) * 3", 9],
    ["2 ^ 3 ^ 2", 512],
    ["2 ** 10", 1024],
    ["-2^2", -4],
    ["(-2)^2", 4],
    ["10 % 4", 2],
    ["5!", 120],
    ["0.1 + 0.2", 0.3],
    ["sqrt(16) + abs(-3)", 7],
    ["log(1000)", 3],
    ["log(8, 2)", 3],
    ["round(pi, 2)", 3.14],
    ["max(1, 7, 3) - min(4, 2)", 5],
    ["2e3 / .5", 4000],
    ["sin(pi / 2)", 1],
    ["6 × 7 − 2", 40]
  ])("%s = %s", (expression, expected) => {
    expect(evaluate(expression)).toBe(expected)
  })

  it.each([
    ["1 / 0", /division by zero at position 3/],
    ["2 +", /expected a number, a name or "\(" but found the end/],
    ["foo(1)", /unknown function "foo"/],
    ["x + 1", /unknown name "x"/],
    ["sqrt(1, 2)", /sqrt takes 1 argument \(got 2\)/],
    ["1 $ 2", /unexpected character "\$" at position 3/],
    ["(1", /expected "\)"/],
    ["1.5!", /factorial needs a whole number/],
    ["10^400", /not a finite number/],
    ["(".repeat(200) + "1" + ")".repeat(200), /nested too deeply/]
  ])("refuses %s", (expression, message) => {
    expect(() => evaluate(expression)).toThrow(message)
  })

  it("never runs anything but arithmetic: any input gives a number or a CalculationError", () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => {
      try {
        expect(typeof evaluate(s)).toBe("number")
      } catch (e) {
        expect(e).toBeInstanceOf(CalculationError)
      }
    }))
    fc.assert(fc.property(fc.stringMatching(/^[0-9+\-*/^()!. a-z,]{1,40}$/), (s) => {
      try {
        expect(Number.isFinite(evaluate(s))).toBe(true)
      } catch (e) {
        expect(e).toBeInstanceOf(CalculationError)
      }
    }))
  })
})
