/** Signing in: the login call and what follows it. */
import { post } from "./api.ts"
import { loadSession } from "./session.svelte.ts"

/** Log in (with a TOTP or backup code when 2FA is on); the session cookies are set by the server. */
export const login = async (loginName: string, password: string, totpCode?: string) => {
  await post("/v1/auth/login", { login: loginName, password, ...(totpCode ? { totp_code: totpCode.replace(/\s+/g, "") } : {}) }, { noRefresh: true })
  await loadSession()
}
