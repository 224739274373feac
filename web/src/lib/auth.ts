/** Signing in: the login call and what follows it. */
import { post } from "./api.ts"
import { loadSession } from "./session.svelte.ts"

/** The second factor when 2FA is on: a TOTP or backup code, or a passkey's answer to a login challenge. */
export type SecondFactor = { readonly totp: string } | { readonly passkey: { readonly challenge_id: string; readonly response: unknown } }

/** Log in (with a second factor when 2FA is on); the session cookies are set by the server. */
export const login = async (loginName: string, password: string, second?: SecondFactor) => {
  const code = second && "totp" in second ? second.totp.replace(/\s+/g, "") : ""
  const factor = second && "passkey" in second ? { passkey: second.passkey } : code ? { totp_code: code } : {}
  await post("/v1/auth/login", { login: loginName, password, ...factor }, { noRefresh: true })
  await loadSession()
}
