/**
 * Pulling an artifact by digest and verifying it before anything runs, in this order:
 *
 * 1. the **signature** (`sha256-<hex>.sig`): its payload must name this digest, its key must be a
 *    trusted publisher's, and the Ed25519 signature must verify (`artifact_unsigned`,
 *    `publisher_untrusted`, `signature_invalid`; `allowUnsigned` accepts unsigned artifacts and
 *    untrusted keys, never a bad signature);
 * 2. the **digests**: the manifest's bytes must hash to the pinned digest, and every blob to the
 *    digest the manifest gives it (`digest_mismatch`), so a moved tag or a tampered layer is caught;
 * 3. the **contents**: an OCI manifest with the app manifest as config and WASM layers, the app
 *    manifest valid (`invalid_artifact`); the caller then admits the modules into the host.
 *
 * Verified bytes are kept in a disk cache by digest (and re-hashed when read back), so a runner
 * pulls an artifact once and can load it again while the registry is down.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import * as Manifest from "../manifest/Manifest.ts"
import type { ArtifactStoreService } from "./ArtifactStore.ts"
import { ArtifactNotFound, ArtifactRejected, type TransportError } from "./Errors.ts"
import * as Oci from "./Oci.ts"
import * as Signing from "./Signing.ts"

/** Who is trusted. */
export interface TrustPolicy {
  /** Trusted publisher keys (`ed25519:…`). */
  readonly trusted: ReadonlyArray<string>
  /** `TROUPE_STORE_ALLOW_UNSIGNED`: accept unsigned artifacts and untrusted keys (never bad signatures). */
  readonly allowUnsigned: boolean
}

/** Pull options. */
export interface PullOptions extends TrustPolicy {
  /** Where verified bytes are cached (none: no disk cache). */
  readonly cacheDir?: string
  /** Refuse artifacts whose blobs add up to more (default 64 MiB). */
  readonly maxBytes?: number
}

/** A verified artifact. */
export interface Verified {
  readonly repository: string
  readonly digest: string
  readonly manifest: Manifest.AppManifest
  readonly modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>
  /** The key that signed it (null: unsigned, accepted by `allowUnsigned`). */
  readonly publicKey: string | null
  /** Whether the signing key is trusted now. */
  readonly trusted: boolean
  readonly size: number
}

/** The signature of a digest as found in the store. */
export interface SignatureInfo {
  readonly publicKey: string
  readonly signature: string
}

const reject = (reason: ArtifactRejected["reason"], digest: string, message: string, publicKey?: string) =>
  new ArtifactRejected({ reason, digest, message, ...(publicKey !== undefined ? { publicKey } : {}) })

/** A small disk cache of verified bytes by digest. */
const diskCache = (dir: string | undefined) => {
  const pathOf = (name: string) => NodePath.join(dir!, name.replace(":", "-"))
  return {
    read: (name: string, digest?: string): Effect.Effect<Uint8Array | undefined> =>
      dir === undefined
        ? Effect.succeed(undefined)
        : Effect.promise(() =>
          NodeFs.readFile(pathOf(name)).then(
            (b) => {
              const bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
              // never trust the disk either: what does not hash to its digest is pulled again
              return digest === undefined || Oci.matches(bytes, digest) ? bytes : undefined
            },
            () => undefined
          )
        ),
    write: (name: string, bytes: Uint8Array): Effect.Effect<void> =>
      dir === undefined ? Effect.void : Effect.promise(async () => {
        try {
          await NodeFs.mkdir(dir, { recursive: true })
          const tmp = `${pathOf(name)}.${NodeCrypto.randomBytes(6).toString("hex")}.tmp`
          await NodeFs.writeFile(tmp, bytes)
          await NodeFs.rename(tmp, pathOf(name))
        } catch {
          // a cache that cannot be written only costs another pull
        }
      })
  }
}

/** Read the signature of `digest` (`sha256-<hex>.sig`) and check it against the trust policy. */
export const verifySignature = (
  store: ArtifactStoreService,
  repository: string,
  digest: string,
  policy: TrustPolicy,
  cacheDir?: string
): Effect.Effect<{ readonly publicKey: string | null; readonly trusted: boolean }, TransportError | ArtifactRejected> =>
  Effect.gen(function*() {
    const cache = diskCache(cacheDir)
    const tag = Oci.signatureTag(digest)
    const cached = yield* cache.read(tag)
    const found = cached !== undefined
      ? Either.right(cached)
      : yield* Effect.either(Effect.catchTag(store.getManifest(repository, tag), "ArtifactRejected", (e) =>
        Effect.fail(reject("bad_signature", digest, `the signature of ${digest} is not a signature manifest (${e.message})`))))
    if (Either.isLeft(found)) {
      if (found.left._tag !== "ArtifactNotFound") return yield* Effect.fail(found.left)
      if (policy.allowUnsigned) return { publicKey: null, trusted: false }
      return yield* reject("unsigned", digest, `${repository}@${digest} is not signed (no ${tag}); sign it with \`troupe skill publish --key\`, or set TROUPE_STORE_ALLOW_UNSIGNED=true`)
    }
    const bad = (why: string, key?: string) => reject("bad_signature", digest, `the signature of ${repository}@${digest} is invalid: ${why}`, key)
    const sigManifest = Oci.parseManifest(found.right)
    if (Either.isLeft(sigManifest)) return yield* bad(sigManifest.left)
    const layer = sigManifest.right.layers.find((l) => l.mediaType === Oci.MediaType.signaturePayload)
    if (!layer) return yield* bad("it has no simple-signing payload")
    const publicKey = layer.annotations?.[Oci.Annotation.publicKey]
    const signature = layer.annotations?.[Oci.Annotation.signature]
    if (!publicKey || !signature) return yield* bad("it does not name its key and signature")
    const payload = (yield* cache.read(layer.digest, layer.digest)) ??
      (yield* store.getBlob(repository, layer.digest, 64 * 1024).pipe(
        Effect.catchTag("ArtifactNotFound", () => Effect.fail(bad("its payload is missing", publicKey))),
        Effect.catchTag("ArtifactRejected", () => Effect.fail(bad("its payload is too large", publicKey)))
      ))
    if (!Oci.matches(payload, layer.digest)) return yield* bad("its payload does not match its digest", publicKey)
    const parsed = Either.flatMap(Oci.parseJson(payload), (json) => Either.mapLeft(Schema.decodeUnknownEither(Oci.SigningPayload)(json), () => "not a simple-signing payload"))
    if (Either.isLeft(parsed)) return yield* bad(`its payload is ${parsed.left}`, publicKey)
    if (parsed.right.critical.image["docker-manifest-digest"] !== digest) {
      return yield* bad(`it signs ${parsed.right.critical.image["docker-manifest-digest"]}, not this digest`, publicKey)
    }
    if (!Signing.verify(publicKey, payload, signature)) return yield* bad(`the Ed25519 signature does not verify with ${publicKey}`, publicKey)
    const trusted = policy.trusted.includes(publicKey)
    if (!trusted && !policy.allowUnsigned) {
      return yield* reject(
        "untrusted_publisher",
        digest,
        `${repository}@${digest} is signed by ${publicKey}, which is not a trusted publisher key (an admin trusts it with POST /v1/admin/publishers)`,
        publicKey
      )
    }
    yield* cache.write(tag, found.right)
    yield* cache.write(layer.digest, payload)
    return { publicKey, trusted }
  })

/** Pull artifact `digest` of `repository` and verify signature, digests and contents. */
export const pull = (
  store: ArtifactStoreService,
  repository: string,
  digest: string,
  options: PullOptions
): Effect.Effect<Verified, TransportError | ArtifactRejected | ArtifactNotFound> =>
  Effect.gen(function*() {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return yield* reject("invalid_artifact", digest, `${digest} is not a sha256 digest`)
    const cache = diskCache(options.cacheDir)
    const maxBytes = options.maxBytes ?? 64 * 1024 * 1024
    const signer = yield* verifySignature(store, repository, digest, options, options.cacheDir)

    const manifestBytes = (yield* cache.read(digest, digest)) ?? (yield* store.getManifest(repository, digest))
    if (!Oci.matches(manifestBytes, digest)) {
      return yield* reject("digest_mismatch", digest, `the manifest of ${repository}@${digest} does not match its digest (it hashes to ${Oci.digestOf(manifestBytes)}): refusing to run it`)
    }
    const manifest = Oci.parseManifest(manifestBytes)
    if (Either.isLeft(manifest)) return yield* reject("invalid_artifact", digest, manifest.left)
    const { config, layers } = manifest.right
    if (config.mediaType !== Oci.MediaType.config) {
      return yield* reject("invalid_artifact", digest, `the config is ${config.mediaType}, not ${Oci.MediaType.config}`)
    }
    if (layers.length === 0 || layers.some((l) => l.mediaType !== Oci.MediaType.wasm)) {
      return yield* reject("invalid_artifact", digest, `every layer must be ${Oci.MediaType.wasm} (and there must be one)`)
    }
    const size = config.size + layers.reduce((n, l) => n + l.size, 0)
    if (size > maxBytes) return yield* reject("too_large", digest, `${repository}@${digest} is ${size} bytes; at most ${maxBytes} are accepted`)

    const blob = (descriptor: Oci.Descriptor, what: string) =>
      Effect.gen(function*() {
        const bytes = (yield* cache.read(descriptor.digest, descriptor.digest)) ??
          (yield* store.getBlob(repository, descriptor.digest, Math.min(descriptor.size, maxBytes)).pipe(
            Effect.catchTag("ArtifactRejected", () =>
              Effect.fail(reject("digest_mismatch", digest, `${what} of ${repository}@${digest} is larger than its descriptor says (${descriptor.size} bytes)`)))
          ))
        if (!Oci.matches(bytes, descriptor.digest)) {
          return yield* reject("digest_mismatch", digest, `${what} of ${repository}@${digest} does not match its digest ${descriptor.digest}: refusing to run it`)
        }
        return bytes
      })

    const configBytes = yield* blob(config, "the app manifest")
    const appManifest = yield* Either.match(Either.flatMap(Oci.parseJson(configBytes), (json) => Either.mapLeft(Manifest.decode(json), (e) => e.message)), {
      onLeft: (why) => Effect.fail(reject("invalid_artifact", digest, `the app manifest of ${repository}@${digest}: ${why}`)),
      onRight: Effect.succeed
    })
    if (appManifest.abi !== "extism-v1") return yield* reject("invalid_artifact", digest, "the app manifest's abi must be extism-v1")
    const modules: Array<{ name: string; bytes: Uint8Array }> = []
    for (const layer of layers) modules.push({ name: Oci.moduleName(layer), bytes: yield* blob(layer, `layer ${Oci.moduleName(layer)}`) })

    yield* cache.write(digest, manifestBytes)
    yield* cache.write(config.digest, configBytes)
    for (const [i, layer] of layers.entries()) yield* cache.write(layer.digest, modules[i]!.bytes)
    return { repository, digest, manifest: appManifest, modules, publicKey: signer.publicKey, trusted: signer.trusted, size }
  }).pipe(Effect.withSpan("store.pull", { attributes: { repository, digest } }))

/** Whether an error means the artifact itself is missing (as opposed to the store being down). */
export const isMissing = (e: { readonly _tag: string }): e is ArtifactNotFound => e._tag === "ArtifactNotFound"
