/**
 * First run: on a database without an admin, create a one-use admin invite, print
 * `Admin invite code: <code>` once and keep it in `<data dir>/initial-admin-invite` (mode 0600)
 * until someone signs up with it (that user becomes the admin). Several gateways starting at
 * once create one invite between them: the database allows a single initial-admin invite.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { UserDirectory } from "../entities/user/directory.ts"
import * as Secrets from "../entities/user/secrets.ts"
import * as Ids from "../runtime/Ids.ts"
import { GatewayConfig } from "./Config.ts"

/** Where the initial admin invite is kept until used. */
export const invitePath = (dataDir: string) => NodePath.join(dataDir, "initial-admin-invite")

/** A new invite code. */
export const newInviteCode = () => `inv_${Ids.make("", 24)}`

/** The stored digest of an invite code. */
export const inviteDigest = (code: string) => Secrets.digest(code.trim())

/** Forget the initial invite file (it was used, or an admin exists). */
export const removeInviteFile = (dataDir: string) =>
  Effect.sync(() => {
    try {
      NodeFs.unlinkSync(invitePath(dataDir))
    } catch {
      // already gone
    }
  })

/** Create the initial admin invite if the database has no admin. */
export const ensureInitialAdmin: Effect.Effect<void, unknown, UserDirectory | GatewayConfig> = Effect.gen(function*() {
  const config = yield* GatewayConfig
  const directory = yield* UserDirectory
  if (yield* directory.hasAdmin) return yield* removeInviteFile(config.dataDir)
  if (yield* directory.pendingInitialAdminInvite) return
  const code = newInviteCode()
  const created = yield* directory.createInvite({
    inviteId: Ids.make("i", 16),
    codeHash: inviteDigest(code),
    kind: "initial_admin",
    uses: 1,
    expiresAt: null,
    giftCredits: 0,
    createdBy: null
  })
  if (!created) return
  const path = invitePath(config.dataDir)
  yield* Effect.try(() => {
    NodeFs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
    NodeFs.writeFileSync(path, code + "\n", { mode: 0o600 })
    NodeFs.chmodSync(path, 0o600)
  })
  yield* Effect.sync(() => void process.stdout.write(`Admin invite code: ${code}\n`))
  yield* Effect.logInfo("Created the initial admin invite: sign up with it to become the admin").pipe(Effect.annotateLogs({ file: path }))
})

/** Run the first-run check when the gateway starts. */
export const layer: Layer.Layer<never, never, UserDirectory | GatewayConfig> = Layer.effectDiscard(
  ensureInitialAdmin.pipe(Effect.catchAllCause((cause) => Effect.logWarning("Could not create the initial admin invite", cause)))
)
