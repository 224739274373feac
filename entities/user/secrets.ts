/**
 * How the account's secrets are made and stored, shared by the User entity and its callers:
 * random tokens, SHA-256 digests of high-entropy secrets (refresh tokens, API keys,
 * codes bound to their user), and constant-time comparison. Passwords are hashed in `passwords.ts`; ids come from `runtime/Ids.ts`.
 */
import * as NodeCrypto from "node:crypto"

/** A random secret: 32 bytes as base64url (no `_`-free guarantee; callers split on `.`). */
export const randomSecret = (bytes = 32): string => NodeCrypto.randomBytes(bytes).toString("base64url")

/** The hex SHA-256 of the parts joined by `:`. */
export const digest = (...parts: ReadonlyArray<string>): string =>
  NodeCrypto.createHash("sha256").update(parts.join(":")).digest("hex")

/** Constant-time equality of two hex digests. */
export const sameDigest = (a: string, b: string): boolean =>
  a.length === b.length && NodeCrypto.timingSafeEqual(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))

/** A 6-digit email verification code. */
export const emailCode = (): string => String(NodeCrypto.randomInt(0, 1_000_000)).padStart(6, "0")

/** The stored digest of an email verification code (bound to its user). */
export const emailCodeDigest = (userId: string, code: string): string => digest("email-code", userId, code.trim())

/** The stored digest of the code confirming a new e-mail address (bound to the user and that address). */
export const emailChangeCodeDigest = (userId: string, email: string, code: string): string =>
  digest("email-change", userId, email.toLowerCase(), code.trim())

/** A password reset link's token, `<userId>.<secret>`, and the digest the User entity stores. */
export const newResetToken = (userId: string): { readonly token: string; readonly hash: string } => {
  const secret = randomSecret()
  return { token: `${userId}.${secret}`, hash: digest("password-reset", secret) }
}

/** The user and digest of a reset token, or undefined when it is not one. */
export const parseResetToken = (token: string): { readonly userId: string; readonly hash: string } | undefined => {
  const m = /^([a-z0-9]{1,64})\.([A-Za-z0-9_-]{40,60})$/.exec(token.trim())
  return m ? { userId: m[1]!, hash: digest("password-reset", m[2]!) } : undefined
}

const base32 = "abcdefghjkmnpqrstuvwxyz23456789"

/** A one-time backup code, `xxxxx-xxxxx` (about 50 bits). */
export const backupCode = (): string => {
  const bytes = NodeCrypto.randomBytes(10)
  let out = ""
  for (let i = 0; i < 10; i++) out += (i === 5 ? "-" : "") + base32[bytes[i]! % base32.length]
  return out
}

/** The stored digest of a backup code (case and dashes ignored). */
export const backupCodeDigest = (userId: string, code: string): string =>
  digest("backup-code", userId, code.toLowerCase().replace(/[^a-z0-9]/g, ""))
