/**
 * Schemas several groups of the public API share: ids in paths and bodies, paging, passwords,
 * balances. A group's own schemas live in its module (`api/<group>.ts`).
 */
import * as Schema from "effect/Schema"
import { PlainText } from "../../entities/user/protocol.ts"

/** Ids in paths and bodies. */
export { Id } from "../../runtime/Ids.ts"

/** A new password. */
export const Password = PlainText(256).pipe(
  Schema.minLength(10, { message: () => "must be at least 10 characters" }),
  Schema.maxLength(256, { message: () => "must be at most 256 characters" })
)

const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100))

/** A cursor: the `next_before` of the previous page. */
export const Before = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())

/** `?before=&limit=` of a paged list. */
export const Paging = Schema.Struct({ before: Schema.optional(Before), limit: Schema.optional(Limit) })

/** A credit balance. */
export const Balance = Schema.Struct({ available: Schema.Number, reserved: Schema.Number }).annotations({ identifier: "Balance" })
