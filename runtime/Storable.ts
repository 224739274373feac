/**
 * Schemas for values that end up in Postgres, refusing at the edge what storage cannot hold, so
 * that nothing accepted by a schema fails later in the database (and never reaches an entity as a
 * message that fails every time it runs):
 *
 * - text: no NUL character (text and jsonb refuse it) and no unpaired UTF-16 surrogate (not
 *   Unicode; `invalid input syntax for type json`, or silently replaced in text columns);
 * - times: years 1 to 9999 (`+275760-09-13` is a valid JavaScript date, not a Postgres one);
 * - JSON documents: the same rules for every string and key, finite numbers, bounded depth.
 */
import * as Schema from "effect/Schema"

const loneSurrogate = /[\uD800-\uDFFF]/u

/** Whether a string is well-formed Unicode with no NUL (what text and jsonb columns accept). */
export const isStorableText = (s: string): boolean => !s.includes("\u0000") && !loneSurrogate.test(s)

/** Text that storage accepts, at most `max` UTF-16 units long. */
export const Text = (max: number) =>
  Schema.String.pipe(
    Schema.maxLength(max),
    Schema.filter((s) => (s.includes("\u0000") ? "must not contain NUL characters" : loneSurrogate.test(s) ? "must be valid Unicode text (no unpaired surrogates)" : true))
  )

// the earliest and latest times stored: years 1 to 9999 (ISO 8601's four-digit years);
// Date.UTC maps years 0-99 to 1900-1999, so the earliest is set field by field
const earliest = new Date(0)
earliest.setUTCFullYear(1, 0, 1)
earliest.setUTCHours(0, 0, 0, 0)
/** 0001-01-01T00:00:00.000Z in milliseconds. */
export const earliestTime = earliest.getTime()
/** 9999-12-31T23:59:59.999Z in milliseconds. */
export const latestTime = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

const inRange = (d: Date) =>
  !Number.isNaN(d.getTime()) && d.getTime() >= earliestTime && d.getTime() <= latestTime ? true : "must be a time between the years 1 and 9999"

/** An ISO 8601 time in the years 1 to 9999 (JSON: a string). */
export const DateTime = Schema.Date.pipe(Schema.filter(inRange))

/** A time in the years 1 to 9999 as milliseconds (entity messages). */
export const DateTimeFromNumber = Schema.DateFromNumber.pipe(Schema.filter(inRange))

/** Why a JSON value cannot be stored, or undefined. Iterative: no recursion on untrusted depth. */
export const jsonProblem = (value: unknown, limits: { readonly maxDepth: number } = { maxDepth: 32 }): string | undefined => {
  const stack: Array<readonly [unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v === "string") {
      if (!isStorableText(v)) return "strings must be valid Unicode text without NUL characters"
    } else if (typeof v === "number") {
      if (!Number.isFinite(v)) return "numbers must be finite"
    } else if (v === null || typeof v === "boolean") {
      continue
    } else if (Array.isArray(v) || typeof v === "object") {
      if (depth >= limits.maxDepth) return `nested deeper than ${limits.maxDepth} levels`
      if (Array.isArray(v)) {
        for (const item of v) stack.push([item, depth + 1])
      } else {
        for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
          if (!isStorableText(k)) return "keys must be valid Unicode text without NUL characters"
          stack.push([item, depth + 1])
        }
      }
    } else {
      return "must be JSON"
    }
  }
  return undefined
}

/** A JSON object storage accepts (jsonb), at most `maxBytes` of JSON text. */
export const JsonObject = (maxBytes: number) =>
  Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
    Schema.filter((o) => {
      const problem = jsonProblem(o)
      if (problem) return problem
      return JSON.stringify(o).length <= maxBytes ? true : `must be at most ${maxBytes} bytes of JSON`
    })
  )
