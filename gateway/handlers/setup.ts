/** Handler of `GET /v1/setup`. Server paths are shown only while the server waits for its first admin. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import { UserDirectory } from "../../entities/user/directory.ts"
import { TroupeApi } from "../Api.ts"
import { GatewayConfig } from "../Config.ts"
import * as FirstRun from "../FirstRun.ts"
import { Mailer, outboxDir } from "../Mailer.ts"
import { call } from "./common.ts"

export const layer = HttpApiBuilder.group(TroupeApi, "setup", (handlers) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const directory = yield* UserDirectory
    const mailer = yield* Mailer
    const signup = config.signup._tag === "InviteOnly" ? "invite_only" as const : config.signup._tag === "Open" ? "open" as const : "domains" as const
    /** Once an admin exists it stays so for this process: no more lookups. */
    let adminSeen = false
    return handlers.handle("get", () =>
      Effect.gen(function*() {
        if (!adminSeen) adminSeen = yield* call(directory.hasAdmin)
        const needsAdmin = !adminSeen && (yield* call(directory.pendingInitialAdminInvite)) !== undefined
        const file = FirstRun.invitePath(config.dataDir)
        return {
          signup,
          needs_admin: needsAdmin,
          initial_invite_file: needsAdmin && NodeFs.existsSync(file) ? file : null,
          mail: mailer.kind,
          outbox_dir: needsAdmin && mailer.kind === "outbox" ? outboxDir(config.dataDir) : null
        }
      }))
  }))
