/**
 * Credentials of a signup in progress, kept in memory only (never in storage) so the page can
 * sign the new account in right after its email is verified. A reload forgets them.
 */
let pending: { login: string; password: string } | undefined

export const rememberSignup = (login: string, password: string) => {
  pending = { login, password }
}

export const takeSignup = () => {
  const p = pending
  pending = undefined
  return p
}
