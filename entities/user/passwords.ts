/**
 * Passwords: hashed with argon2id (OWASP's minimum: 19 MiB, 2 passes, 1 lane) by the caller that
 * receives them, so only the hash travels in the persisted `Register` message, and verified by
 * the User entity at login.
 */
import * as Argon2 from "@node-rs/argon2"
import * as Effect from "effect/Effect"

const options: Argon2.Options = { algorithm: 2 as Argon2.Algorithm /* Argon2id */, memoryCost: 19_456, timeCost: 2, parallelism: 1 }

/** The argon2id hash of a password (`$argon2id$…`). */
export const hash = (password: string): Effect.Effect<string> => Effect.promise(() => Argon2.hash(password, options))

/** Whether `password` matches `stored` (false for a malformed hash). */
export const verify = (stored: string, password: string): Effect.Effect<boolean> =>
  Effect.promise(() => Argon2.verify(stored, password).catch(() => false))

/** A hash nobody's password matches, made once. */
let dummy: Promise<string> | undefined

/**
 * Spend the time of a verification when the login names nobody, so a wrong login takes as long
 * as a wrong password.
 */
export const verifyNobody = (password: string): Effect.Effect<void> =>
  Effect.promise(async () => {
    dummy ??= Argon2.hash("troupe-dummy-password", options)
    await Argon2.verify(await dummy, password).catch(() => false)
  })
