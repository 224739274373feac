/**
 * Handlers of the app store: the catalog and publishing read and write the store directly; every
 * change to an install goes to the `AppInstall` entity on a runner (where the master key is), then
 * this gateway refreshes its own registry at once (others within a poll).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Buffer } from "node:buffer"
import { retryTransient } from "../../runtime/Cluster.ts"
import { errorResponse } from "../../runtime/Http.ts"
import * as SkillErrors from "../../skills/Errors.ts"
import type * as Catalog from "../../skills/store/Catalog.ts"
import * as StoreErrors from "../../skills/store/Errors.ts"
import { AppInstall } from "../../skills/store/InstallEntity.ts"
import { InstalledApps } from "../../skills/store/Installed.ts"
import * as Oci from "../../skills/store/Oci.ts"
import * as Permissions from "../../skills/store/Permissions.ts"
import { databaseDown, Store } from "../../skills/store/Store.ts"
import { describeSkill } from "../../skills/Skills.ts"
import { TroupeApi } from "../Api.ts"
import { authenticate, CurrentPrincipal, type Principal } from "../Auth.ts"
import { ApiFailure, type EntityError, fromEntity } from "../Errors.ts"
import * as Policy from "../Policy.ts"

/**
 * Everything the store's handlers fail with: the store's errors, the skills' (a manifest or module
 * refused), the database's, the entities' and the cluster's, and failures already made.
 */
export type StoreFailure = StoreErrors.StoreError | SkillErrors.AdmissionError | SkillErrors.ManifestError | SqlError | EntityError | ApiFailure

/**
 * A store failure as an `ApiFailure`: the store's and the skills' errors carry their status and
 * code (`describe`), the rest are the entities' (`fromEntity`). Exhaustive by type: an error added
 * to `StoreFailure` does not compile until it is mapped.
 */
export const storeFailure = (e: StoreFailure): ApiFailure => {
  switch (e._tag) {
    case "ApiFailure":
      return e
    case "StoreUnavailable":
    case "StoreRefused":
    case "ArtifactNotFound":
    case "ArtifactRejected":
    case "CatalogNotFound":
    case "CatalogConflict":
    case "InvalidConfig": {
      const d = StoreErrors.describe(e)
      return new ApiFailure({ status: d.status, code: d.code, message: d.message, details: d.details })
    }
    case "AdmissionError":
    case "ManifestError": {
      const d = SkillErrors.describe(e)
      return new ApiFailure({ status: d.status, code: d.code, message: d.message, details: d.details })
    }
    case "SqlError":
      return storeFailure(databaseDown(e))
    default:
      return fromEntity(e)
  }
}

const store = <A, E extends StoreFailure, R>(effect: Effect.Effect<A, E, R>) => Effect.mapError(effect, storeFailure)

/** An install as the API shows it. */
export const installJson = (i: Catalog.Install) => ({
  app: i.appId,
  version: i.version,
  digest: i.digest,
  config: Object.fromEntries(
    i.manifest.config.map((c) => [c.key, (c.secret ? i.secretKeys : i.configKeys).includes(c.key) ? "set" as const : "unset" as const])
  ),
  pending_upgrade: i.pending === null
    ? null
    : { version: i.pending.version, digest: i.pending.digest, requested_by: i.pending.requestedBy, requested_at: i.pending.requestedAt },
  installed_by: i.installedBy,
  installed_at: i.installedAt,
  updated_at: i.updatedAt
})

const versionJson = (v: Catalog.Version, publishers: ReadonlyArray<Catalog.Publisher>) => {
  const m = v.manifest
  const signer = v.publicKey === null ? undefined : publishers.find((p) => p.publicKey === v.publicKey)
  return {
    version: v.version,
    digest: v.digest,
    size: v.size,
    published_at: v.createdAt,
    signature: v.publicKey === null ? null : { public_key: v.publicKey, trusted: signer !== undefined, publisher: signer?.name ?? null },
    permissions: { allowed_hosts: m.permissions.allowedHosts, wasi: m.permissions.wasi, host_functions: m.permissions.hostFunctions },
    limits: { memory_mb: m.limits.memoryMb, timeout_ms: m.limits.timeoutMs },
    config: m.config.map((c) => ({ key: c.key, ...(c.description !== undefined ? { description: c.description } : {}), secret: c.secret, required: c.required })),
    skills: m.skills.map((s) => describeSkill(m, s))
  }
}

const diffJson = (appId: string, diff: Permissions.Diff, status: "pending" | "not_requested" | "applied") => ({
  app: appId,
  from: diff.from,
  to: diff.to,
  escalates: diff.escalates,
  status,
  changes: diff.changes
})

/** May this principal publish? Admin sessions, or the `publisher` role (API keys: scope `publish`). */
const requirePublisher = (principal: Principal) =>
  Effect.gen(function*() {
    yield* Policy.require(principal, Policy.Publish)
    if (principal.role === "admin") return true
    const { catalog } = yield* Store
    if (!(yield* store(catalog.isPublisher(principal.userId)))) {
      return yield* Effect.fail(new ApiFailure({ status: 403, code: "publisher_required", message: "Publishing needs the publisher role (an admin grants it: PUT /v1/admin/users/{id}/publisher)" }))
    }
    return false
  })

export const layer = HttpApiBuilder.group(TroupeApi, "store", (handlers) =>
  Effect.gen(function*() {
    const service = yield* Store
    const { catalog } = service
    const installs = yield* AppInstall.client
    const installed = yield* Effect.serviceOption(InstalledApps)
    const refreshLocal = Option.match(installed, { onNone: () => Effect.void, onSome: (i) => i.refresh })
    const admin = Effect.flatMap(CurrentPrincipal, (p) => Effect.as(Policy.require(p, Policy.AdminApps), p))
    const reread = (appId: string) =>
      Effect.flatMap(store(catalog.install(appId)), (found) =>
        Option.match(found, {
          onNone: () => Effect.fail(storeFailure(new StoreErrors.CatalogNotFound({ what: "install", app: appId, message: `"${appId}" is not installed` }))),
          onSome: (i) => Effect.succeed(installJson(i))
        }))
    const entity = <A, E extends StoreFailure, R>(effect: Effect.Effect<A, E, R>) => store(retryTransient(effect))

    return handlers
      .handle("list", ({ urlParams }) =>
        Effect.gen(function*() {
          yield* Effect.flatMap(CurrentPrincipal, (p) => Policy.require(p, Policy.ReadApps))
          const limit = urlParams.limit ?? 20
          const offset = urlParams.offset ?? 0
          const page = yield* store(catalog.search({ limit, offset, ...(urlParams.q ? { q: urlParams.q } : {}), ...(urlParams.category ? { category: urlParams.category } : {}) }))
          const current = new Map((yield* store(catalog.installs)).map((i) => [i.appId, i.version]))
          return {
            apps: page.apps.map((a) => ({
              id: a.appId,
              name: a.name,
              description: a.description,
              publisher: a.publisher,
              categories: a.categories,
              latest_version: a.latestVersion,
              installed_version: current.get(a.appId) ?? null,
              updated_at: a.updatedAt
            })),
            total: page.total,
            next_offset: offset + page.apps.length < page.total ? offset + page.apps.length : null
          }
        }))
      .handle("get", ({ path }) =>
        Effect.gen(function*() {
          yield* Effect.flatMap(CurrentPrincipal, (p) => Policy.require(p, Policy.ReadApps))
          // versions pushed straight to the registry show up here (the registry being down does not hide the catalog)
          yield* Effect.ignore(service.refresh(path.app))
          const { app, versions } = yield* store(catalog.app(path.app))
          const publishers = yield* store(catalog.publishers)
          const install = yield* store(catalog.install(path.app))
          return {
            id: app.appId,
            name: app.name,
            description: app.description,
            publisher: app.publisher,
            categories: app.categories,
            latest_version: app.latestVersion,
            installed: Option.match(install, { onNone: () => null, onSome: (i) => ({ version: i.version, digest: i.digest }) }),
            versions: versions.map((v) => versionJson(v, publishers))
          }
        }))
      .handle("publish", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const isAdmin = yield* requirePublisher(principal)
          const manifestBytes = new Uint8Array(Buffer.from(payload.manifest, "base64"))
          const version = yield* store(service.publish({
            appId: payload.app,
            manifestBytes,
            signature: payload.signature === null ? null : { publicKey: payload.signature.public_key, signature: payload.signature.signature },
            userId: principal.userId,
            isAdmin
          }))
          return { app: version.appId, version: version.version, digest: version.digest, size: version.size }
        }))
      .handle("trust", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const p = yield* store(catalog.trust({ publicKey: payload.public_key, name: payload.name, addedBy: principal.userId }))
          yield* refreshLocal
          return { public_key: p.publicKey, name: p.name, added_by: p.addedBy, created_at: p.createdAt }
        }))
      .handle("publishers", () =>
        Effect.gen(function*() {
          yield* admin
          const list = yield* store(catalog.publishers)
          return { publishers: list.map((p) => ({ public_key: p.publicKey, name: p.name, added_by: p.addedBy, created_at: p.createdAt })) }
        }))
      .handle("untrust", ({ urlParams }) =>
        Effect.gen(function*() {
          yield* admin
          yield* store(catalog.untrust(urlParams.public_key))
          yield* refreshLocal
        }))
      .handle("grantPublisher", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          yield* store(catalog.setPublisher(path.id, true, principal.userId))
          return { user_id: path.id, publisher: true }
        }))
      .handle("revokePublisher", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          yield* store(catalog.setPublisher(path.id, false, principal.userId))
          return { user_id: path.id, publisher: false }
        }))
      .handle("installs", () =>
        Effect.gen(function*() {
          yield* admin
          return { installs: (yield* store(catalog.installs)).map(installJson) }
        }))
      .handle("install", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          yield* entity(installs(path.app).Install({ version: payload.version, by: principal.userId }))
          yield* refreshLocal
          return yield* reread(path.app)
        }))
      .handle("upgrade", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          const outcome = yield* entity(installs(path.app).Upgrade({ version: payload.version, by: principal.userId }))
          yield* refreshLocal
          return {
            status: outcome.status,
            install: yield* reread(path.app),
            diff: diffJson(path.app, outcome.diff, outcome.status === "pending" ? "pending" : "applied")
          }
        }))
      .handle("upgradeDiff", ({ path }) =>
        Effect.gen(function*() {
          yield* admin
          const current = yield* store(catalog.install(path.app))
          if (Option.isNone(current)) {
            return yield* Effect.fail(storeFailure(new StoreErrors.CatalogNotFound({ what: "install", app: path.app, message: `"${path.app}" is not installed` })))
          }
          const target = yield* store(catalog.version(path.app, path.version))
          const status = current.value.pending?.version === path.version ? "pending" : current.value.version === path.version ? "applied" : "not_requested"
          const from = current.value.version === path.version
            ? yield* store(Effect.map(catalog.app(path.app), (a) => a.versions.find((v) => v.version !== path.version)?.manifest ?? target.manifest))
            : current.value.manifest
          return diffJson(path.app, Permissions.diff(from, target.manifest), status)
        }))
      .handle("approve", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          yield* entity(installs(path.app).Approve({ version: path.version, by: principal.userId }))
          yield* refreshLocal
          return yield* reread(path.app)
        }))
      .handle("uninstall", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* admin
          yield* entity(installs(path.app).Uninstall({ by: principal.userId }))
          yield* refreshLocal
        }))
      .handle("configure", ({ path, payload }) =>
        Effect.gen(function*() {
          yield* admin
          yield* entity(installs(path.app).Configure({ config: payload.config ?? {}, secrets: payload.secrets ?? {} }))
          yield* refreshLocal
          return yield* reread(path.app)
        }))
      .handle("sync", () =>
        Effect.gen(function*() {
          yield* admin
          return { indexed: yield* store(service.sync) }
        }))
  }))

const digestRe = /^sha256:[0-9a-f]{64}$/

/** Where blobs are uploaded: `PUT /v1/store/uploads/{app}/{digest}`. */
export const uploadPrefix = "/v1/store/uploads"

/**
 * `PUT /v1/store/uploads/{app}/{digest}`: one blob of an artifact being published, raw
 * (`application/octet-stream`, at most `TROUPE_STORE_MAX_ARTIFACT_BYTES`), checked against its
 * digest. Outside the JSON API (its body is neither JSON nor small); authenticated the same way.
 */
/** The blob upload route's handler (authenticated like the API). */
export const uploadHandler = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.method !== "PUT") return yield* Effect.fail(new ApiFailure({ status: 405, code: "method_not_allowed", message: `PUT ${uploadPrefix}/{app}/sha256:<hex>` }))
    const principal = yield* authenticate(request)
    yield* requirePublisher(principal)
    const [app = "", digest = ""] = decodeURIComponent(request.url.split("?")[0]!.slice(uploadPrefix.length + 1)).split("/")
    if (!/^[a-z][a-z0-9-]{0,63}$/.test(app) || !digestRe.test(digest)) {
      return yield* Effect.fail(new ApiFailure({ status: 400, code: "invalid_request", message: `the path is ${uploadPrefix}/{app}/sha256:<hex>` }))
    }
    const service = yield* Store
    yield* store(service.mayPublish(app, principal.userId, principal.role === "admin"))
    const max = service.settings.maxArtifactBytes
    if (Number(request.headers["content-length"] ?? "0") > max) {
      return yield* Effect.fail(new ApiFailure({ status: 413, code: "payload_too_large", message: `a blob is at most ${max} bytes (TROUPE_STORE_MAX_ARTIFACT_BYTES)` }))
    }
    const body = yield* request.arrayBuffer.pipe(
      HttpIncomingMessage.withMaxBodySize(Option.some(max)),
      Effect.mapError(() => new ApiFailure({ status: 413, code: "payload_too_large", message: `a blob is at most ${max} bytes (TROUPE_STORE_MAX_ARTIFACT_BYTES)` }))
    )
    const bytes = new Uint8Array(body)
    yield* store(service.uploadBlob(app, digest, bytes))
    return HttpServerResponse.unsafeJson({ digest, size: bytes.byteLength, media_type: Oci.MediaType.wasm }, { status: 201 })
  })

/** The upload route as the router mounts it: failures are the API's error body. */
export const uploadRoute = uploadHandler.pipe(
  Effect.catchAll((e) => {
    const f = storeFailure(e)
    return Effect.succeed(errorResponse(f.status, f.code, f.message, f.details))
  })
)
