/**
 * The app store as the gateway and the install entity use it: publishing (blobs first, then the
 * manifest with its signature), indexing versions pushed straight to the registry, and pulling a
 * catalog version with every check (signature against the trusted keys, digests, contents, the
 * admission check) before it may be installed.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as semver from "semver"
import type { BlobStore } from "../../runtime/BlobStore.ts"
import { AdmissionError } from "../Errors.ts"
import * as Admission from "../host/Admission.ts"
import * as Manifest from "../manifest/Manifest.ts"
import { ArtifactStore, type ArtifactStoreService } from "./ArtifactStore.ts"
import * as ArtifactStoreModule from "./ArtifactStore.ts"
import * as Catalog from "./Catalog.ts"
import { StoreConfig, type StoreSettings } from "./Config.ts"
import * as StoreConfigModule from "./Config.ts"
import { ArtifactNotFound, ArtifactRejected, CatalogConflict, CatalogNotFound, StoreUnavailable, type TransportError } from "./Errors.ts"
import * as Oci from "./Oci.ts"
import * as Publish from "./Publish.ts"
import * as Pull from "./Pull.ts"

/** A database failure, as the store reports it (503, retry). */
export const databaseDown = (e: SqlError) => new StoreUnavailable({ store: "database", message: `the database failed: ${e.message}` })

/** What publishing can fail with. */
export type PublishError = TransportError | ArtifactRejected | ArtifactNotFound | CatalogConflict | AdmissionError

/** What verifying a catalog version can fail with. */
export type VerifyError = TransportError | ArtifactRejected | ArtifactNotFound | CatalogNotFound | AdmissionError

/** The store service. */
export interface StoreService {
  readonly settings: StoreSettings
  readonly artifacts: ArtifactStoreService
  readonly catalog: Catalog.CatalogService
  readonly repositoryOf: (appId: string) => string
  readonly trustPolicy: Effect.Effect<Pull.TrustPolicy, StoreUnavailable>
  /** Whether `userId` may publish `appId` (the first publisher owns an app id; admins may publish any). */
  readonly mayPublish: (appId: string, userId: string, isAdmin: boolean) => Effect.Effect<void, CatalogConflict | StoreUnavailable>
  /** Store one blob of an artifact being published; its bytes must hash to `digest`. */
  readonly uploadBlob: (appId: string, digest: string, bytes: Uint8Array) => Effect.Effect<void, TransportError | ArtifactRejected>
  /** Publish the artifact whose manifest is `manifestBytes` (its blobs uploaded before). */
  readonly publish: (request: {
    readonly appId: string
    readonly manifestBytes: Uint8Array
    readonly signature: Publish.Signature | null
    readonly userId: string
    readonly isAdmin: boolean
  }) => Effect.Effect<Catalog.Version, PublishError>
  /** Index the versions of `appId` in the artifact store that the catalog does not know yet. */
  readonly refresh: (appId: string) => Effect.Effect<number, TransportError>
  /** `refresh` every app of the namespace. */
  readonly sync: Effect.Effect<number, TransportError>
  /** Pull catalog version `version` of `appId` (by its digest) with every check. */
  readonly verify: (appId: string, version: string) => Effect.Effect<{ readonly version: Catalog.Version; readonly artifact: Pull.Verified }, VerifyError>
  /** Pull `digest` of `appId` with every check (what runners do before running it). */
  readonly pull: (appId: string, digest: string) => Effect.Effect<Pull.Verified, TransportError | ArtifactRejected | ArtifactNotFound | AdmissionError>
}

/** The store tag. */
export class Store extends Context.Tag("troupe/skills/store/Store")<Store, StoreService>() {}

const admit = (verified: Pull.Verified): Effect.Effect<Pull.Verified, AdmissionError> => {
  const problems = Admission.checkApp(verified.manifest, verified.modules)
  return problems.length > 0
    ? Effect.fail(new AdmissionError({ problems, message: `${verified.manifest.id} ${verified.manifest.version}: ${problems.join("; ")}` }))
    : Effect.succeed(verified)
}

/** Build the store service. */
export const make = Effect.gen(function*() {
  const settings = yield* StoreConfig
  const artifacts = yield* ArtifactStore
  const catalog = yield* Catalog.Catalog
  const repositoryOf = (appId: string) => Publish.repositoryOf(settings.namespace, appId)

  const trustPolicy = Effect.map(
    Effect.mapError(catalog.publishers, databaseDown),
    (publishers): Pull.TrustPolicy => ({ trusted: publishers.map((p) => p.publicKey), allowUnsigned: settings.allowUnsigned })
  )

  const pull = (appId: string, digest: string) =>
    Effect.gen(function*() {
      const policy = yield* trustPolicy
      const verified = yield* Pull.pull(artifacts, repositoryOf(appId), digest, { ...policy, cacheDir: settings.cacheDir, maxBytes: settings.maxArtifactBytes })
      if (verified.manifest.id !== appId) {
        return yield* new ArtifactRejected({ reason: "invalid_artifact", digest, message: `${repositoryOf(appId)}@${digest} holds app "${verified.manifest.id}", not "${appId}"` })
      }
      return yield* admit(verified)
    })

  const mayPublish = (appId: string, userId: string, isAdmin: boolean) =>
    Effect.gen(function*() {
      if (isAdmin) return
      const existing = yield* catalog.app(appId).pipe(
        Effect.map((a) => a.app.ownerId),
        Effect.catchTag("CatalogNotFound", () => Effect.succeed(null)),
        Effect.mapError(databaseDown)
      )
      if (existing !== null && existing !== userId) {
        return yield* new CatalogConflict({ reason: "app_owned", app: appId, message: `the app id "${appId}" belongs to another publisher` })
      }
    })

  /** Read and check an artifact's blobs (publishing and indexing). */
  const readArtifact = (appId: string, digest: string, manifestBytes: Uint8Array) =>
    Effect.gen(function*() {
      const manifest = yield* Either.match(Oci.parseManifest(manifestBytes), {
        onLeft: (why) => Effect.fail(new ArtifactRejected({ reason: "invalid_artifact", digest, message: why })),
        onRight: Effect.succeed
      })
      if (manifest.config.mediaType !== Oci.MediaType.config || manifest.layers.length === 0 || manifest.layers.some((l) => l.mediaType !== Oci.MediaType.wasm)) {
        return yield* new ArtifactRejected({
          reason: "invalid_artifact",
          digest,
          message: `an app artifact has a ${Oci.MediaType.config} config and ${Oci.MediaType.wasm} layers`
        })
      }
      const size = manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0)
      if (size > settings.maxArtifactBytes) {
        return yield* new ArtifactRejected({ reason: "too_large", digest, message: `the artifact is ${size} bytes; at most ${settings.maxArtifactBytes} are accepted` })
      }
      const blob = (d: Oci.Descriptor) =>
        Effect.flatMap(
          artifacts.getBlob(repositoryOf(appId), d.digest, d.size).pipe(
            Effect.catchTag("ArtifactRejected", () => Effect.fail(new ArtifactRejected({ reason: "digest_mismatch", digest, message: `blob ${d.digest} is larger than its descriptor says` })))
          ),
          (bytes) =>
            Oci.matches(bytes, d.digest)
              ? Effect.succeed(bytes)
              : Effect.fail(new ArtifactRejected({ reason: "digest_mismatch", digest, message: `blob ${d.digest} does not match its digest` }))
        )
      const configBytes = yield* blob(manifest.config)
      const app = yield* Either.match(Either.flatMap(Oci.parseJson(configBytes), (json) => Either.mapLeft(Manifest.decode(json), (e) => e.message)), {
        onLeft: (why) => Effect.fail(new ArtifactRejected({ reason: "invalid_artifact", digest, message: `the app manifest: ${why}` })),
        onRight: Effect.succeed
      })
      if (app.id !== appId) {
        return yield* new ArtifactRejected({ reason: "invalid_artifact", digest, message: `the artifact's app manifest has id "${app.id}", not "${appId}"` })
      }
      if (app.abi !== "extism-v1") return yield* new ArtifactRejected({ reason: "invalid_artifact", digest, message: "the app manifest's abi must be extism-v1" })
      const modules: Array<{ name: string; bytes: Uint8Array }> = []
      for (const layer of manifest.layers) modules.push({ name: Oci.moduleName(layer), bytes: yield* blob(layer) })
      yield* admit({ repository: repositoryOf(appId), digest, manifest: app, modules, publicKey: null, trusted: false, size })
      return { app, size }
    })

  const refresh = (appId: string): Effect.Effect<number, TransportError> =>
    Effect.gen(function*() {
      const repository = repositoryOf(appId)
      const tags = yield* artifacts.listTags(repository)
      let added = 0
      for (const tag of tags) {
        const version = tag.replaceAll("_", "+")
        if (tag.endsWith(".sig") || semver.valid(version) === null) continue
        if (yield* Effect.orElseSucceed(catalog.hasVersion(appId, version), () => true)) continue
        const indexed = yield* Effect.gen(function*() {
          const bytes = yield* artifacts.getManifest(repository, tag)
          const digest = Oci.digestOf(bytes)
          const { app, size } = yield* readArtifact(appId, digest, bytes)
          if (app.version !== version) {
            return yield* new ArtifactRejected({ reason: "invalid_artifact", digest, message: `tag ${tag} holds version ${app.version}` })
          }
          // signed or not; a bad signature keeps it out of the catalog
          const signer = yield* Pull.verifySignature(artifacts, repository, digest, { trusted: [], allowUnsigned: true })
          yield* catalog.addVersion({ manifest: app, digest, publicKey: signer.publicKey, size, publishedBy: null, isAdmin: true })
          return 1
        }).pipe(
          Effect.catchAll((e) =>
            e._tag === "StoreUnavailable" || e._tag === "StoreRefused"
              ? Effect.fail(e)
              : Effect.as(Effect.logWarning("Not indexing an artifact found in the registry").pipe(Effect.annotateLogs({ repository, tag, reason: e.message })), 0)
          )
        )
        added += indexed
      }
      return added
    }).pipe(Effect.withSpan("store.refresh", { attributes: { app: appId } }))

  const service: StoreService = {
    settings,
    artifacts,
    catalog,
    repositoryOf,
    trustPolicy,
    mayPublish,
    uploadBlob: (appId, digest, bytes) =>
      Oci.matches(bytes, digest)
        ? artifacts.putBlob(repositoryOf(appId), { descriptor: { mediaType: "application/octet-stream", digest, size: bytes.byteLength }, bytes })
        : Effect.fail(new ArtifactRejected({ reason: "digest_mismatch", digest, message: `the uploaded bytes hash to ${Oci.digestOf(bytes)}, not ${digest}` })),
    publish: ({ appId, isAdmin, manifestBytes, signature, userId }) =>
      Effect.gen(function*() {
        const digest = Oci.digestOf(manifestBytes)
        yield* mayPublish(appId, userId, isAdmin)
        const { app, size } = yield* readArtifact(appId, digest, manifestBytes)
        const repository = repositoryOf(appId)
        if (signature === null) {
          if (!settings.allowUnsigned) {
            return yield* new ArtifactRejected({
              reason: "unsigned",
              digest,
              message: `${appId} ${app.version} is not signed: sign it with a publisher key (\`troupe skill keygen\`, then \`troupe skill publish --key\`), or set TROUPE_STORE_ALLOW_UNSIGNED=true on the server`
            })
          }
        } else if (!Publish.verifies(appId, digest, signature)) {
          return yield* new ArtifactRejected({
            reason: "bad_signature",
            digest,
            message: `the signature does not verify with ${signature.publicKey} over ${digest}`,
            publicKey: signature.publicKey
          })
        }
        if (yield* Effect.mapError(catalog.hasVersion(appId, app.version), databaseDown)) {
          return yield* new CatalogConflict({ reason: "version_exists", app: appId, message: `${appId} ${app.version} is already published; versions cannot change: publish a new version` })
        }
        yield* artifacts.putManifest(repository, ArtifactStoreModule.tagOf(app.version), manifestBytes)
        if (signature !== null) {
          yield* ArtifactStoreModule.push(artifacts, repository, Oci.signatureTag(digest), Publish.signatureArtifact(appId, digest, signature))
        }
        const version = yield* catalog.addVersion({ manifest: app, digest, publicKey: signature?.publicKey ?? null, size, publishedBy: userId, isAdmin }).pipe(
          Effect.catchTag("SqlError", (e) => Effect.fail(databaseDown(e)))
        )
        yield* Effect.logInfo("App version published").pipe(Effect.annotateLogs({ app: appId, version: app.version, digest, user_id: userId }))
        return version
      }).pipe(Effect.withSpan("store.publish", { attributes: { app: appId } })),
    refresh,
    sync: Effect.gen(function*() {
      const prefix = settings.namespace === "" ? "" : `${settings.namespace}/`
      const repositories = yield* artifacts.listRepositories
      let added = 0
      for (const repository of repositories) {
        if (!repository.startsWith(prefix)) continue
        const appId = repository.slice(prefix.length)
        if (!/^[a-z][a-z0-9-]*$/.test(appId)) continue
        added += yield* refresh(appId)
      }
      return added
    }),
    verify: (appId, version) =>
      Effect.gen(function*() {
        const known = yield* catalog.version(appId, version).pipe(
          Effect.catchTag("CatalogNotFound", (notFound) =>
            // pushed straight to the registry and not indexed yet?
            Effect.zipRight(refresh(appId), Effect.catchTag(catalog.version(appId, version), "CatalogNotFound", () => Effect.fail(notFound)))),
          Effect.catchTag("SqlError", (e) => Effect.fail(databaseDown(e)))
        )
        const artifact = yield* pull(appId, known.digest)
        return { version: known, artifact }
      }),
    pull
  }
  return service
})

/** The store over the artifact store and catalog in context. */
export const layer: Layer.Layer<Store, never, StoreConfig | ArtifactStore | Catalog.Catalog> = Layer.effect(Store, make)

/** Store, catalog and artifact store from the settings (the registry, or the embedded store in the blob store). */
export const layerFromConfig: Layer.Layer<Store | Catalog.Catalog | ArtifactStore, never, StoreConfig | SqlClient.SqlClient | BlobStore> = layer.pipe(
  Layer.provideMerge(Layer.merge(Catalog.layer, StoreConfigModule.layerArtifactStore))
)
