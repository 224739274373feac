/**
 * The `AppInstall` entity (one per app id): the single writer of an app's install. It runs on
 * runners, where the master key is, so config and secrets are encrypted there; the gateway asks
 * it. Calls are volatile (secrets must not sit in the cluster's message table); each is
 * idempotent in effect or refused with a typed error, so a client retries safely.
 */
import * as Entity from "@effect/cluster/Entity"
import type * as Sharding from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Rpc from "@effect/rpc/Rpc"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { BlobStore } from "../../runtime/BlobStore.ts"
import type { TroupeConfig } from "../../runtime/Config.ts"
import { KeyRing } from "../../runtime/KeyRing.ts"
import { AdmissionError } from "../Errors.ts"
import type * as Catalog from "./Catalog.ts"
import * as StoreConfig from "./Config.ts"
import { ArtifactNotFound, ArtifactRejected, CatalogConflict, CatalogNotFound, InvalidConfig, StoreRefused, StoreUnavailable } from "./Errors.ts"
import * as Installs from "./Installs.ts"
import * as Store from "./Store.ts"

/** One changed field of an upgrade. */
export const Change = Schema.Struct({ field: Schema.String, from: Schema.Unknown, to: Schema.Unknown, escalates: Schema.Boolean, description: Schema.String })

/** An upgrade's diff. */
export const Diff = Schema.Struct({ from: Schema.String, to: Schema.String, changes: Schema.Array(Change), escalates: Schema.Boolean })

/** An install as callers see it: no config values, only which keys are set. */
export class InstallView extends Schema.Class<InstallView>("troupe/AppInstall/InstallView")({
  app: Schema.String,
  version: Schema.String,
  digest: Schema.String,
  configKeys: Schema.Array(Schema.String),
  secretKeys: Schema.Array(Schema.String),
  pending: Schema.NullOr(Schema.Struct({
    version: Schema.String,
    digest: Schema.String,
    diff: Diff,
    requestedBy: Schema.String,
    requestedAt: Schema.DateFromNumber
  })),
  installedBy: Schema.String,
  installedAt: Schema.DateFromNumber,
  updatedAt: Schema.DateFromNumber
}) {}

/** What an install call fails with. */
export const InstallFailure = Schema.Union(
  StoreUnavailable,
  StoreRefused,
  ArtifactNotFound,
  ArtifactRejected,
  CatalogNotFound,
  CatalogConflict,
  InvalidConfig,
  AdmissionError
)

const Version = Schema.String.pipe(Schema.maxLength(128))
const By = Schema.String.pipe(Schema.maxLength(64))
const Values = Schema.Record({ key: Schema.String, value: Schema.NullOr(Schema.String) })

/** The entity. */
export const AppInstall = Entity.make("AppInstall", [
  Rpc.make("Install", { payload: { version: Version, by: By }, success: InstallView, error: InstallFailure }),
  Rpc.make("Upgrade", {
    payload: { version: Version, by: By },
    success: Schema.Struct({ status: Schema.Literal("upgraded", "pending"), install: InstallView, diff: Diff }),
    error: InstallFailure
  }),
  Rpc.make("Approve", { payload: { version: Version, by: By }, success: InstallView, error: InstallFailure }),
  Rpc.make("Uninstall", { payload: { by: By }, success: Schema.Void, error: InstallFailure }),
  Rpc.make("Configure", { payload: { config: Values, secrets: Values }, success: InstallView, error: InstallFailure })
])

/** An install as its view. */
export const viewOf = (i: Catalog.Install): InstallView =>
  new InstallView({
    app: i.appId,
    version: i.version,
    digest: i.digest,
    configKeys: i.configKeys,
    secretKeys: i.secretKeys,
    pending: i.pending === null
      ? null
      : { version: i.pending.version, digest: i.pending.digest, diff: i.pending.diff, requestedBy: i.pending.requestedBy, requestedAt: i.pending.requestedAt },
    installedBy: i.installedBy,
    installedAt: i.installedAt,
    updatedAt: i.updatedAt
  })

/** Host AppInstall entities (needs the store and the key ring). */
export const layerEntity: Layer.Layer<never, never, Sharding.Sharding | Store.Store | KeyRing> = AppInstall.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const appId = address.entityId
    const ops = Installs.make(yield* Store.Store, yield* KeyRing)
    return AppInstall.of({
      Install: ({ payload }) => Effect.map(ops.install(appId, payload.version, payload.by), viewOf),
      Upgrade: ({ payload }) => Effect.map(ops.upgrade(appId, payload.version, payload.by), (o) => ({ status: o.status, install: viewOf(o.install), diff: o.diff })),
      Approve: ({ payload }) => Effect.map(ops.approve(appId, payload.version, payload.by), viewOf),
      Uninstall: ({ payload }) => ops.uninstall(appId, payload.by),
      Configure: ({ payload }) => Effect.map(ops.configure(appId, payload), viewOf)
    })
  }),
  { concurrency: 1 }
)

/** The entity with the store read from the environment (what runners host). */
export const layer: Layer.Layer<never, unknown, Sharding.Sharding | KeyRing | SqlClient.SqlClient | BlobStore | TroupeConfig> = layerEntity.pipe(
  Layer.provide(Store.layerFromConfig),
  Layer.provide(StoreConfig.layer)
)
