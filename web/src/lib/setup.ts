/** What a signed-out page may know about the server (`GET /v1/setup`; older servers lack it). */
import { get } from "./api.ts"
import type { ServerSetup } from "./types.ts"

let cached: Promise<ServerSetup | undefined> | undefined

export const serverSetup = (fresh = false): Promise<ServerSetup | undefined> => {
  if (fresh || !cached) cached = get<ServerSetup>("/v1/setup", { noRefresh: true }).catch(() => undefined)
  return cached
}
