/**
 * Installing, upgrading, approving, configuring and uninstalling apps. Every change is checked
 * first (the version is pulled by its digest and verified: signature, trust, digests, admission)
 * and recorded in `store_installs`, pinned to the digest, where every process picks it up
 * (`Installed.ts`). An upgrade whose permissions escalate is held as pending; the installed
 * version keeps serving until an admin approves it.
 *
 * Config and secrets are encrypted with the key ring (data key `store-install:<app>`), never
 * returned: readers see which keys are set. This runs where the master key is — on runners, in
 * the `AppInstall` entity (`InstallEntity.ts`) — and the gateway asks it.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { KeyRingService } from "../../runtime/KeyRing.ts"
import type * as Manifest from "../manifest/Manifest.ts"
import type * as Catalog from "./Catalog.ts"
import { CatalogConflict, CatalogNotFound, InvalidConfig, StoreUnavailable } from "./Errors.ts"
import * as Permissions from "./Permissions.ts"
import { databaseDown, type StoreService, type VerifyError } from "./Store.ts"

/** The outcome of an upgrade request. */
export interface UpgradeOutcome {
  readonly status: "upgraded" | "pending"
  readonly install: Catalog.Install
  readonly diff: Permissions.Diff
}

/** What the install operations fail with. */
export type InstallError = VerifyError | CatalogConflict | CatalogNotFound | InvalidConfig | StoreUnavailable

const dataKey = (appId: string) => `store-install:${appId}`
const aad = (appId: string, what: "config" | "secrets") => `store_installs:${appId}:${what}`

const keyRingDown = (e: { readonly _tag: string; readonly message?: string }) =>
  new StoreUnavailable({ store: "key ring", message: `the key ring failed: ${e.message ?? e._tag}` })

/** The decrypted config and secrets of an install. */
export const resolveConfig = (
  keys: KeyRingService,
  install: Catalog.Install
): Effect.Effect<{ readonly config: Record<string, string>; readonly secrets: Record<string, string> }, StoreUnavailable> =>
  Effect.gen(function*() {
    const open = (bytes: Uint8Array | null, what: "config" | "secrets") =>
      bytes === null
        ? Effect.succeed({} as Record<string, string>)
        : Effect.map(keys.decryptText(bytes, aad(install.appId, what)), (text) => JSON.parse(text) as Record<string, string>)
    return {
      config: yield* Effect.mapError(open(install.config, "config"), keyRingDown),
      secrets: yield* Effect.mapError(open(install.secrets, "secrets"), keyRingDown)
    }
  })

/** The install operations over the store and the key ring. */
export const make = (store: StoreService, keys: KeyRingService) => {
  const { catalog } = store
  const current = (appId: string) =>
    Effect.flatMap(Effect.mapError(catalog.install(appId), databaseDown), (found) =>
      Option.match(found, {
        onNone: () => Effect.fail(new CatalogNotFound({ what: "install", app: appId, message: `"${appId}" is not installed` })),
        onSome: Effect.succeed
      }))
  const reread = (appId: string) => current(appId)

  const install = (appId: string, version: string, by: string): Effect.Effect<Catalog.Install, InstallError> =>
    Effect.gen(function*() {
      const existing = yield* Effect.mapError(catalog.install(appId), databaseDown)
      if (Option.isSome(existing)) {
        return yield* new CatalogConflict({
          reason: "already_installed",
          app: appId,
          message: `${appId} ${existing.value.version} is installed; upgrade it (POST /v1/admin/apps/${appId}/upgrade)`
        })
      }
      const { artifact } = yield* store.verify(appId, version)
      yield* Effect.mapError(catalog.putInstall({ appId, version, digest: artifact.digest, manifest: artifact.manifest, installedBy: by }), databaseDown)
      yield* Effect.logInfo("App installed").pipe(Effect.annotateLogs({ app: appId, version, digest: artifact.digest, by }))
      return yield* reread(appId)
    })

  const apply = (appId: string, manifest: Manifest.AppManifest, digest: string, by: string) =>
    Effect.zipRight(
      Effect.mapError(catalog.putInstall({ appId, version: manifest.version, digest, manifest, installedBy: by }), databaseDown),
      Effect.logInfo("App upgraded").pipe(Effect.annotateLogs({ app: appId, version: manifest.version, digest, by }))
    )

  const upgrade = (appId: string, version: string, by: string): Effect.Effect<UpgradeOutcome, InstallError> =>
    Effect.gen(function*() {
      const installed = yield* current(appId)
      if (installed.version === version) {
        return yield* new CatalogConflict({ reason: "not_newer", app: appId, message: `${appId} ${version} is the installed version` })
      }
      const { artifact } = yield* store.verify(appId, version)
      const diff = Permissions.diff(installed.manifest, artifact.manifest)
      if (diff.escalates) {
        yield* Effect.mapError(
          catalog.setPending(appId, { version, digest: artifact.digest, manifest: artifact.manifest, diff, requestedBy: by, requestedAt: new Date() }),
          databaseDown
        )
        yield* Effect.logInfo("App upgrade waits for approval").pipe(
          Effect.annotateLogs({ app: appId, from: installed.version, to: version, escalations: diff.changes.filter((c) => c.escalates).map((c) => c.field).join(", ") })
        )
        return { status: "pending" as const, install: yield* reread(appId), diff }
      }
      yield* apply(appId, artifact.manifest, artifact.digest, by)
      return { status: "upgraded" as const, install: yield* reread(appId), diff }
    })

  const approve = (appId: string, version: string, by: string): Effect.Effect<Catalog.Install, InstallError> =>
    Effect.gen(function*() {
      const installed = yield* current(appId)
      const pending = installed.pending
      if (pending === null || pending.version !== version) {
        return yield* new CatalogNotFound({ what: "upgrade", app: appId, version, message: `no upgrade of ${appId} to ${version} waits for approval` })
      }
      // checked again: trust may have changed since the request
      const verified = yield* store.pull(appId, pending.digest)
      yield* apply(appId, verified.manifest, verified.digest, by)
      return yield* reread(appId)
    })

  const uninstall = (appId: string, by: string): Effect.Effect<void, InstallError> =>
    Effect.gen(function*() {
      const removed = yield* Effect.mapError(catalog.deleteInstall(appId), databaseDown)
      if (!removed) return yield* new CatalogNotFound({ what: "install", app: appId, message: `"${appId}" is not installed` })
      yield* Effect.orElseSucceed(keys.destroyDataKey(dataKey(appId)), () => undefined)
      yield* Effect.logInfo("App uninstalled").pipe(Effect.annotateLogs({ app: appId, by }))
    })

  /** Set (a string) or unset (null) config keys and secrets; the others keep their values. */
  const configure = (
    appId: string,
    changes: { readonly config: Readonly<Record<string, string | null>>; readonly secrets: Readonly<Record<string, string | null>> }
  ): Effect.Effect<Catalog.Install, InstallError> =>
    Effect.gen(function*() {
      const installed = yield* current(appId)
      const declared = new Map(installed.manifest.config.map((c) => [c.key, c]))
      const issues: Array<{ path: string; message: string }> = []
      for (const [field, values, secret] of [["config", changes.config, false], ["secrets", changes.secrets, true]] as const) {
        for (const [key, value] of Object.entries(values)) {
          const spec = declared.get(key)
          if (!spec) issues.push({ path: `${field}.${key}`, message: `${appId} has no config key "${key}" (it has ${[...declared.keys()].join(", ") || "none"})` })
          else if (spec.secret !== secret) issues.push({ path: `${field}.${key}`, message: secret ? "is not a secret: set it in config" : "is a secret: set it in secrets" })
          else if (value !== null && value.length > 8192) issues.push({ path: `${field}.${key}`, message: "is longer than 8192 characters" })
        }
      }
      if (issues.length > 0) {
        return yield* new InvalidConfig({ app: appId, issues, message: `invalid config for ${appId}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}` })
      }
      const now = yield* resolveConfig(keys, installed)
      const merge = (base: Record<string, string>, patch: Readonly<Record<string, string | null>>) => {
        const next = { ...base }
        for (const [k, v] of Object.entries(patch)) {
          if (v === null) delete next[k]
          else next[k] = v
        }
        return next
      }
      const config = merge(now.config, changes.config)
      const secrets = merge(now.secrets, changes.secrets)
      yield* Effect.mapError(keys.createDataKey(dataKey(appId)), keyRingDown)
      const seal = (values: Record<string, string>, what: "config" | "secrets") =>
        Object.keys(values).length === 0
          ? Effect.succeed(null)
          : Effect.mapError(keys.encryptText(dataKey(appId), JSON.stringify(values), aad(appId, what)), keyRingDown)
      yield* Effect.mapError(
        catalog.setConfig(appId, {
          config: yield* seal(config, "config"),
          configKeys: Object.keys(config).sort(),
          secrets: yield* seal(secrets, "secrets"),
          secretKeys: Object.keys(secrets).sort()
        }),
        databaseDown
      )
      return yield* reread(appId)
    })

  return { install, upgrade, approve, uninstall, configure }
}
