/**
 * Publishing an artifact: build it from an app manifest and its modules, sign its digest with a
 * publisher key, and push both (the artifact under its version's tag, the signature under
 * `sha256-<hex>.sig`). The CLI does this straight to a registry (`--registry`); the server does
 * the pushing part when an author publishes through its API.
 */
import * as Effect from "effect/Effect"
import type * as NodeCrypto from "node:crypto"
import * as ArtifactStore from "./ArtifactStore.ts"
import type { TransportError } from "./Errors.ts"
import * as Oci from "./Oci.ts"
import * as Signing from "./Signing.ts"

/** A signature as a client sends it. */
export interface Signature {
  readonly publicKey: string
  readonly signature: string
}

/** The repository of an app: `<namespace>/<app id>`. */
export const repositoryOf = (namespace: string, appId: string): string => (namespace === "" ? appId : `${namespace}/${appId}`)

/**
 * Sign an artifact's digest. The payload names the app id (not a registry path), so the same
 * signature holds in any registry and namespace.
 */
export const sign = (privateKey: NodeCrypto.KeyObject, appId: string, digest: string): Signature => ({
  publicKey: Signing.publicKeyOf(privateKey),
  signature: Signing.sign(privateKey, Oci.signingPayload(appId, digest))
})

/** The signature artifact for a client's signature of `digest` of app `appId`. */
export const signatureArtifact = (appId: string, digest: string, signature: Signature): Oci.Artifact =>
  Oci.buildSignature(Oci.signingPayload(appId, digest), signature.signature, signature.publicKey)

/** Whether a client's signature of `digest` of app `appId` verifies. */
export const verifies = (appId: string, digest: string, signature: Signature): boolean =>
  Signing.verify(signature.publicKey, Oci.signingPayload(appId, digest), signature.signature)

/** Push an artifact under `version` and, when given, its signature. */
export const pushSigned = (
  store: ArtifactStore.ArtifactStoreService,
  repository: string,
  version: string,
  artifact: Oci.Artifact,
  signature: Signature | undefined,
  progress?: (sent: number, total: number) => void
): Effect.Effect<void, TransportError> =>
  Effect.gen(function*() {
    yield* ArtifactStore.push(store, repository, ArtifactStore.tagOf(version), artifact, progress)
    if (signature) {
      const appId = artifact.manifest.annotations?.[Oci.Annotation.title] ?? repository.slice(repository.lastIndexOf("/") + 1)
      yield* ArtifactStore.push(store, repository, Oci.signatureTag(artifact.digest), signatureArtifact(appId, artifact.digest, signature))
    }
  })
