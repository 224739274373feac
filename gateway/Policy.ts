/**
 * Who may do what. Handlers ask the policy before acting; nothing else decides access.
 *
 * - A signed-in session (JWT) may do everything on its own account; admin routes need the
 *   `admin` role.
 * - An API key acts for its user within its scopes: `chats` (read and write chats), `read`
 *   (read chats, mates, profile, credits), `skills` (invoke any skill) or `skills:<app>` (that
 *   app's skills). Account management (API keys, 2FA, sessions, mates, deleting the account)
 *   and admin routes need a session, never an API key.
 * - The app store's administration also takes an admin's API key with scope `apps:admin`.
 * - Chats are visible to their owner only; to anyone else they do not exist (404).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { SpendScope } from "../entities/credit/protocol.ts"
import type { Principal } from "./Auth.ts"
import { ApiFailure } from "./Errors.ts"

/** What a request wants to do. */
export type Action =
  | { readonly _tag: "Account" }
  | { readonly _tag: "Admin" }
  | { readonly _tag: "Profile" }
  | { readonly _tag: "ReadChats" }
  | { readonly _tag: "WriteChats" }
  | { readonly _tag: "ReadApps" }
  | { readonly _tag: "InvokeSkill"; readonly app: string }
  /** Publishing to the app store (the `publisher` role is checked by the store). */
  | { readonly _tag: "Publish" }
  /** The app store's administration (trust keys, install, upgrade, approve, uninstall, configure). */
  | { readonly _tag: "AdminApps" }

export const Account: Action = { _tag: "Account" }
export const Admin: Action = { _tag: "Admin" }
export const Profile: Action = { _tag: "Profile" }
export const ReadChats: Action = { _tag: "ReadChats" }
export const WriteChats: Action = { _tag: "WriteChats" }
export const ReadApps: Action = { _tag: "ReadApps" }
export const InvokeSkill = (app: string): Action => ({ _tag: "InvokeSkill", app })
export const Publish: Action = { _tag: "Publish" }
export const AdminApps: Action = { _tag: "AdminApps" }

const forbidden = (code: string, message: string, details?: unknown) =>
  Effect.fail(new ApiFailure(details === undefined ? { status: 403, code, message } : { status: 403, code, message, details }))

/** The scopes an API key needs for an action (any one of them); none: sessions only. */
const scopesFor = (action: Action): ReadonlyArray<string> | undefined => {
  switch (action._tag) {
    case "Account":
    case "Admin":
      return undefined
    case "Profile":
    case "ReadApps":
      return ["read", "chats", "skills"]
    case "ReadChats":
      return ["read", "chats"]
    case "WriteChats":
      return ["chats"]
    case "InvokeSkill":
      return ["skills", `skills:${action.app}`]
    case "Publish":
      return ["publish"]
    case "AdminApps":
      return ["apps:admin"]
  }
}

/** Whether `principal` may do `action`. */
export const allows = (principal: Principal, action: Action): boolean => {
  if (action._tag === "Admin") return principal.via === "session" && principal.role === "admin"
  // an admin's API key with scope `apps:admin` (the CLI's `troupe admin apps`), or an admin session
  if (action._tag === "AdminApps" && principal.role !== "admin") return false
  if (principal.via === "session") return true
  const needed = scopesFor(action)
  if (!needed || Option.isNone(principal.apiKey)) return false
  const scopes = principal.apiKey.value.scopes
  if (action._tag === "Profile" || action._tag === "ReadApps") return scopes.length > 0
  return needed.some((s) => scopes.includes(s))
}

/** Fail with 403 unless `principal` may do `action`. */
export const require = (principal: Principal, action: Action): Effect.Effect<void, ApiFailure> => {
  if (allows(principal, action)) return Effect.void
  if (action._tag === "Admin" && principal.via === "session") return forbidden("admin_only", "This needs an admin account")
  if (action._tag === "AdminApps" && principal.role !== "admin") return forbidden("admin_only", "This needs an admin account")
  const needed = scopesFor(action)
  if (principal.via === "api_key" && needed) {
    return forbidden("insufficient_scope", `This API key lacks the scope for this (needs one of: ${needed.join(", ")})`, { needed })
  }
  return forbidden("session_required", "This needs a signed-in session, not an API key")
}

/** Fail with 404 unless the chat belongs to the principal. */
export const requireChatOwner = (principal: Principal, chat: { readonly ownerId: string }): Effect.Effect<void, ApiFailure> =>
  chat.ownerId === principal.userId ? Effect.void : Effect.fail(new ApiFailure({ status: 404, code: "chat_not_found", message: "No such chat" }))

/** The spend scope id of an API key with a cap. */
export const apiKeySpendScopeId = (keyId: string): string => `api_key:${keyId}`

/** The spend scope credits must be held under: an API key's cap, if it has one. */
export const spendScope = (principal: Principal): SpendScope | undefined =>
  Option.match(principal.apiKey, {
    onNone: () => undefined,
    onSome: (k) => (k.spendCap === null ? undefined : new SpendScope({ id: apiKeySpendScopeId(k.keyId), cap: k.spendCap }))
  })
