/**
 * `math.calculate`: a small arithmetic language evaluated by a hand-written parser (no `eval`,
 * no access to anything but numbers). Numbers (`1.5`, `2e-3`), `+ - * / %`, `^` or `**` (power,
 * right-associative, binding tighter than unary minus: `-2^2 = -4`), `!` (factorial),
 * parentheses, the constants `pi`, `e`, `tau`, and functions such as `sqrt`, `sin`, `log(x, base)`,
 * `min`, `max`, `round(x, digits)`.
 */
import * as Effect from "effect/Effect"
import { InvalidInput } from "../Errors.ts"
import type { SkillContext, SkillOutput } from "../Skill.ts"

/** The expression is not valid, or its value is not a finite number. */
export class CalculationError extends Error {
  readonly _tag = "CalculationError"
  constructor(message: string, readonly position: number) {
    super(message)
  }
}

type Token =
  | { readonly kind: "number"; readonly value: number; readonly pos: number }
  | { readonly kind: "name"; readonly value: string; readonly pos: number }
  | { readonly kind: "op"; readonly value: string; readonly pos: number }
  | { readonly kind: "end"; readonly pos: number }

const MAX_LENGTH = 1000
const MAX_DEPTH = 64

const tokenize = (source: string): Array<Token> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < source.length) {
    const c = source[i]!
    if (/\s/.test(c)) {
      i++
      continue
    }
    const number = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(source.slice(i))
    if (number) {
      tokens.push({ kind: "number", value: Number(number[0]), pos: i })
      i += number[0].length
      continue
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i))
    if (name) {
      tokens.push({ kind: "name", value: name[0].toLowerCase(), pos: i })
      i += name[0].length
      continue
    }
    if (source.startsWith("**", i)) {
      tokens.push({ kind: "op", value: "^", pos: i })
      i += 2
      continue
    }
    const op = c === "×" ? "*" : c === "÷" ? "/" : c === "−" ? "-" : c
    if ("+-*/%^!(),".includes(op)) {
      tokens.push({ kind: "op", value: op, pos: i })
      i++
      continue
    }
    throw new CalculationError(`unexpected character ${JSON.stringify(c)} at position ${i + 1}`, i)
  }
  tokens.push({ kind: "end", pos: source.length })
  return tokens
}

const CONSTANTS: Readonly<Record<string, number>> = { pi: Math.PI, e: Math.E, tau: 2 * Math.PI }

const factorial = (n: number, pos: number): number => {
  if (!Number.isInteger(n) || n < 0) throw new CalculationError(`factorial needs a whole number ≥ 0 (got ${n})`, pos)
  if (n > 170) return Number.POSITIVE_INFINITY
  let r = 1
  for (let k = 2; k <= n; k++) r *= k
  return r
}

const FUNCTIONS: Readonly<Record<string, { readonly arity: readonly [number, number]; readonly fn: (...xs: Array<number>) => number }>> = {
  sqrt: { arity: [1, 1], fn: Math.sqrt },
  cbrt: { arity: [1, 1], fn: Math.cbrt },
  abs: { arity: [1, 1], fn: Math.abs },
  sign: { arity: [1, 1], fn: Math.sign },
  exp: { arity: [1, 1], fn: Math.exp },
  ln: { arity: [1, 1], fn: Math.log },
  log: { arity: [1, 2], fn: (x, base) => (base === undefined ? Math.log10(x) : Math.log(x) / Math.log(base)) },
  log2: { arity: [1, 1], fn: Math.log2 },
  log10: { arity: [1, 1], fn: Math.log10 },
  sin: { arity: [1, 1], fn: Math.sin },
  cos: { arity: [1, 1], fn: Math.cos },
  tan: { arity: [1, 1], fn: Math.tan },
  asin: { arity: [1, 1], fn: Math.asin },
  acos: { arity: [1, 1], fn: Math.acos },
  atan: { arity: [1, 1], fn: Math.atan },
  atan2: { arity: [2, 2], fn: Math.atan2 },
  sinh: { arity: [1, 1], fn: Math.sinh },
  cosh: { arity: [1, 1], fn: Math.cosh },
  tanh: { arity: [1, 1], fn: Math.tanh },
  floor: { arity: [1, 1], fn: Math.floor },
  ceil: { arity: [1, 1], fn: Math.ceil },
  trunc: { arity: [1, 1], fn: Math.trunc },
  round: {
    arity: [1, 2],
    fn: (x, digits) => {
      const d = digits === undefined ? 0 : Math.trunc(digits)
      const f = 10 ** Math.max(-15, Math.min(15, d))
      return Math.round(x * f) / f
    }
  },
  pow: { arity: [2, 2], fn: Math.pow },
  min: { arity: [1, 100], fn: Math.min },
  max: { arity: [1, 100], fn: Math.max },
  hypot: { arity: [1, 100], fn: Math.hypot },
  mod: { arity: [2, 2], fn: (a, b) => a % b }
}

class Parser {
  private i = 0
  constructor(private readonly tokens: ReadonlyArray<Token>) {}

  private get token(): Token {
    return this.tokens[this.i]!
  }

  private isOp(value: string): boolean {
    const t = this.token
    return t.kind === "op" && t.value === value
  }

  private expectOp(value: string) {
    if (!this.isOp(value)) throw this.unexpected(`expected "${value}"`)
    this.i++
  }

  private unexpected(expected: string): CalculationError {
    const t = this.token
    const what = t.kind === "end" ? "the end of the expression" : `"${t.kind === "number" ? t.value : t.value}"`
    return new CalculationError(`${expected} but found ${what} at position ${t.pos + 1}`, t.pos)
  }

  parse(): number {
    const value = this.additive(0)
    if (this.token.kind !== "end") throw this.unexpected("expected an operator")
    return value
  }

  private additive(depth: number): number {
    let left = this.multiplicative(depth)
    while (this.isOp("+") || this.isOp("-")) {
      const op = (this.tokens[this.i++] as { value: string }).value
      const right = this.multiplicative(depth)
      left = op === "+" ? left + right : left - right
    }
    return left
  }

  private multiplicative(depth: number): number {
    let left = this.unary(depth)
    while (this.isOp("*") || this.isOp("/") || this.isOp("%")) {
      const t = this.tokens[this.i++] as { value: string; pos: number }
      const right = this.unary(depth)
      if ((t.value === "/" || t.value === "%") && right === 0) throw new CalculationError(`division by zero at position ${t.pos + 1}`, t.pos)
      left = t.value === "*" ? left * right : t.value === "/" ? left / right : left % right
    }
    return left
  }

  private unary(depth: number): number {
    if (depth > MAX_DEPTH) throw new CalculationError("the expression is nested too deeply", this.token.pos)
    if (this.isOp("-")) {
      this.i++
      return -this.unary(depth + 1)
    }
    if (this.isOp("+")) {
      this.i++
      return this.unary(depth + 1)
    }
    return this.power(depth)
  }

  private power(depth: number): number {
    const base = this.postfix(depth)
    if (this.isOp("^")) {
      this.i++
      return base ** this.unary(depth + 1)
    }
    return base
  }

  private postfix(depth: number): number {
    let value = this.primary(depth)
    while (this.isOp("!")) {
      value = factorial(value, this.token.pos)
      this.i++
    }
    return value
  }

  private primary(depth: number): number {
    const t = this.token
    if (t.kind === "number") {
      this.i++
      return t.value
    }
    if (t.kind === "op" && t.value === "(") {
      this.i++
      const value = this.additive(depth + 1)
      this.expectOp(")")
      return value
    }
    if (t.kind === "name") {
      this.i++
      if (this.isOp("(")) {
        const f = FUNCTIONS[t.value]
        if (!f) throw new CalculationError(`unknown function "${t.value}" at position ${t.pos + 1}`, t.pos)
        this.i++
        const args: Array<number> = []
        if (!this.isOp(")")) {
          args.push(this.additive(depth + 1))
          while (this.isOp(",")) {
            this.i++
            args.push(this.additive(depth + 1))
          }
        }
        this.expectOp(")")
        const [min, max] = f.arity
        if (args.length < min || args.length > max) {
          const expected = min === max ? `${min}` : max >= 100 ? `at least ${min}` : `${min} or ${max}`
          throw new CalculationError(`${t.value} takes ${expected} argument${min === 1 && max === 1 ? "" : "s"} (got ${args.length})`, t.pos)
        }
        return f.fn(...args)
      }
      const constant = CONSTANTS[t.value]
      if (constant === undefined) throw new CalculationError(`unknown name "${t.value}" at position ${t.pos + 1}`, t.pos)
      return constant
    }
    throw this.unexpected("expected a number, a name or \"(\"")
  }
}

/** Evaluate an expression (throws `CalculationError`). The result has 15 significant digits. */
export const evaluate = (expression: string): number => {
  if (expression.length > MAX_LENGTH) throw new CalculationError(`the expression is longer than ${MAX_LENGTH} characters`, MAX_LENGTH)
  if (expression.trim().length === 0) throw new CalculationError("the expression is empty", 0)
  const value = new Parser(tokenize(expression)).parse()
  if (!Number.isFinite(value)) throw new CalculationError("the result is not a finite number", 0)
  const rounded = Number(value.toPrecision(15))
  return Object.is(rounded, -0) ? 0 : rounded
}

/** `math.calculate`. */
export const calculate = (input: unknown, context: SkillContext): Effect.Effect<SkillOutput, InvalidInput> =>
  Effect.suspend(() => {
    const { expression } = input as { readonly expression: string }
    try {
      return Effect.succeed({ result: { expression, result: evaluate(expression) } })
    } catch (e) {
      if (!(e instanceof CalculationError)) throw e
      return Effect.fail(
        new InvalidInput({
          skill: `${context.app}.${context.skill}`,
          message: `cannot calculate ${JSON.stringify(expression.slice(0, 80))}: ${e.message}`,
          issues: [{ path: "expression", message: e.message }]
        })
      )
    }
  })
