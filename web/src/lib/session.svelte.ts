/** Who is signed in, shared by every page. */
import { ApiError, get, post } from "./api.ts"
import type { Me } from "./types.ts"

type State =
  | { status: "loading" }
  | { status: "signed_out" }
  | { status: "signed_in"; me: Me }
  | { status: "error"; error: ApiError }

export const session = $state<{ current: State }>({ current: { status: "loading" } })

/** The signed-in user, if any. */
export const me = (): Me | undefined => (session.current.status === "signed_in" ? session.current.me : undefined)

/** Ask the server who we are (refreshing the session if its access token expired). */
export const loadSession = async (): Promise<void> => {
  try {
    const me = await get<Me>("/v1/me")
    session.current = { status: "signed_in", me }
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) session.current = { status: "signed_out" }
    else session.current = { status: "error", error: e instanceof ApiError ? e : new ApiError(0, "network", "Could not reach the server.") }
  }
}

export const setMe = (me: Me) => {
  session.current = { status: "signed_in", me }
}

export const signedOut = () => {
  session.current = { status: "signed_out" }
}

/** End this session on the server and here. */
export const logout = async (): Promise<void> => {
  try {
    await post("/v1/auth/logout")
  } finally {
    signedOut()
  }
}
