/**
 * Ids: one schema for the ids in paths, bodies and entity messages, and one generator. An id is
 * 1-64 letters, digits, `_` or `-`; a generated one is a prefix (a letter naming what it is: `u`
 * user, `c` chat, `t` turn …) and random lowercase letters and digits.
 */
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"

/** What an id looks like. */
export const pattern = /^[A-Za-z0-9_-]{1,64}$/

/** An id in a path, a body or an entity message. */
export const Id = Schema.String.pipe(Schema.pattern(pattern, { message: () => "must be 1-64 letters, digits, _ or -" }))

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
/** Bytes at or above this would favour the first letters of the alphabet: they are drawn again. */
const unbiased = 256 - (256 % alphabet.length)

/**
 * A new random id: `prefix` followed by `length` lowercase letters and digits (20 of them carry
 * about 103 bits).
 */
export const make = (prefix = "", length = 20): string => {
  let out = prefix
  while (out.length < prefix.length + length) {
    for (const byte of NodeCrypto.randomBytes(length + 8)) {
      if (byte >= unbiased) continue
      out += alphabet[byte % alphabet.length]
      if (out.length === prefix.length + length) break
    }
  }
  return out
}
