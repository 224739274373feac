/**
 * The OCI artifact layout of a Troupe app, the same in a registry and in the embedded store:
 *
 * - an image manifest (`application/vnd.oci.image.manifest.v1+json`) tagged with the app's version
 *   in the repository `<namespace>/<app id>`; its sha256 is the version's **digest**, what installs
 *   are pinned to and what publishers sign;
 * - its config blob is the app manifest (`application/vnd.wasm.config.v0+json`);
 * - each WASM module is a layer (`application/wasm`, titled by `org.opencontainers.image.title`);
 * - the signature is a second manifest tagged `sha256-<hex>.sig` (cosign's tag convention, since a
 *   plain registry has no referrers API) whose one layer is the simple-signing payload naming the
 *   digest, with the Ed25519 signature and the publisher's key in its annotations.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"

/** Media types. */
export const MediaType = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.wasm.config.v0+json",
  wasm: "application/wasm",
  signaturePayload: "application/vnd.dev.cosign.simplesigning.v1+json",
  emptyConfig: "application/vnd.oci.empty.v1+json"
} as const

/** Annotations. */
export const Annotation = {
  title: "org.opencontainers.image.title",
  version: "org.opencontainers.image.version",
  signature: "dev.cosignproject.cosign/signature",
  publicKey: "dev.troupe.publisher-key"
} as const

/** A `sha256:<64 hex>` digest. */
export const Digest = Schema.String.pipe(Schema.pattern(/^sha256:[0-9a-f]{64}$/, { message: () => "must be sha256:<64 lowercase hex digits>" }))

/** The digest of some bytes. */
export const digestOf = (bytes: Uint8Array): string => `sha256:${NodeCrypto.createHash("sha256").update(bytes).digest("hex")}`

/** Whether `bytes` hash to `digest`. */
export const matches = (bytes: Uint8Array, digest: string): boolean => digestOf(bytes) === digest

/** The tag of a digest's signature (`sha256-<hex>.sig`). */
export const signatureTag = (digest: string): string => `${digest.replace(":", "-")}.sig`

/** A content descriptor. */
export const Descriptor = Schema.Struct({
  mediaType: Schema.String,
  digest: Digest,
  size: Schema.Number.pipe(Schema.int(), Schema.nonNegative()),
  annotations: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})
export type Descriptor = typeof Descriptor.Type

/** An OCI image manifest (the fields we write and read). */
export const ImageManifest = Schema.Struct({
  schemaVersion: Schema.Literal(2),
  mediaType: Schema.optional(Schema.String),
  artifactType: Schema.optional(Schema.String),
  config: Descriptor,
  layers: Schema.Array(Descriptor),
  annotations: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})
export type ImageManifest = typeof ImageManifest.Type

/** A blob to upload with its descriptor. */
export interface Blob {
  readonly descriptor: Descriptor
  readonly bytes: Uint8Array
}

/** A built artifact: the manifest's exact bytes, its digest and its blobs. */
export interface Artifact {
  readonly manifest: ImageManifest
  readonly manifestBytes: Uint8Array
  readonly digest: string
  readonly config: Blob
  readonly layers: ReadonlyArray<Blob>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

const blob = (mediaType: string, bytes: Uint8Array, annotations?: Record<string, string>): Blob => ({
  descriptor: { mediaType, digest: digestOf(bytes), size: bytes.byteLength, ...(annotations ? { annotations } : {}) },
  bytes
})

/**
 * The artifact of an app: `appManifest` (as JSON, the form authors write) as the config blob and
 * each module as a layer. The same input always gives the same bytes and digest.
 */
export const build = (
  appManifest: { readonly id: string; readonly version: string },
  modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>
): Artifact => {
  const config = blob(MediaType.config, encoder.encode(JSON.stringify(appManifest)))
  const layers = modules.map((m) => blob(MediaType.wasm, m.bytes, { [Annotation.title]: `${m.name}.wasm` }))
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config: config.descriptor,
    layers: layers.map((l) => l.descriptor),
    annotations: { [Annotation.title]: appManifest.id, [Annotation.version]: appManifest.version }
  }
  const manifestBytes = encoder.encode(JSON.stringify(manifest))
  return { manifest, manifestBytes, digest: digestOf(manifestBytes), config, layers }
}

/** The module name of a layer (its title without `.wasm`; `main` when untitled). */
export const moduleName = (layer: Descriptor): string => (layer.annotations?.[Annotation.title] ?? "main.wasm").replace(/\.wasm$/, "")

/** Parse manifest bytes (any problem is a message). */
export const parseManifest = (bytes: Uint8Array): Either.Either<ImageManifest, string> => {
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(bytes))
  } catch {
    return Either.left("the manifest is not JSON")
  }
  return Either.mapLeft(Schema.decodeUnknownEither(ImageManifest)(json), (e) => `the manifest is not an OCI image manifest: ${e.message.split("\n")[0]}`)
}

/** Parse JSON bytes. */
export const parseJson = (bytes: Uint8Array): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(decoder.decode(bytes)) as unknown)
  } catch {
    return Either.left("not UTF-8 JSON")
  }
}

// ---------------------------------------------------------------------------------------------
// Signatures (cosign's layout)

/** The simple-signing payload: what a signature covers. */
export const SigningPayload = Schema.Struct({
  critical: Schema.Struct({
    identity: Schema.Struct({ "docker-reference": Schema.String }),
    image: Schema.Struct({ "docker-manifest-digest": Digest }),
    type: Schema.Literal("cosign container image signature")
  }),
  optional: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})
export type SigningPayload = typeof SigningPayload.Type

/** The payload bytes a publisher signs for `digest` of `reference` (e.g. `troupe/hello`). */
export const signingPayload = (reference: string, digest: string): Uint8Array =>
  encoder.encode(JSON.stringify({
    critical: {
      identity: { "docker-reference": reference },
      image: { "docker-manifest-digest": digest },
      type: "cosign container image signature"
    },
    optional: null
  } satisfies SigningPayload))

/** A signature artifact: an empty config and the payload as its one layer. */
export const buildSignature = (payload: Uint8Array, signatureBase64: string, publicKey: string): Artifact => {
  const config = blob(MediaType.emptyConfig, encoder.encode("{}"))
  const layer = blob(MediaType.signaturePayload, payload, { [Annotation.signature]: signatureBase64, [Annotation.publicKey]: publicKey })
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.manifest, config: config.descriptor, layers: [layer.descriptor] }
  const manifestBytes = encoder.encode(JSON.stringify(manifest))
  return { manifest, manifestBytes, digest: digestOf(manifestBytes), config, layers: [layer] }
}
