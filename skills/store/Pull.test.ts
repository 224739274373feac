/**
 * Pull + verify: a signed artifact by a trusted key comes back with its modules; an unsigned one,
 * a wrong signature, an untrusted key, a tampered manifest and a tampered layer are each refused
 * with their own code; verified bytes are cached on disk and re-checked when read back.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as BlobStore from "../../runtime/BlobStore.ts"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"
import * as ArtifactStore from "./ArtifactStore.ts"
import { StoreUnavailable } from "./Errors.ts"
import * as Oci from "./Oci.ts"
import * as Publish from "./Publish.ts"
import * as Pull from "./Pull.ts"
import * as Signing from "./Signing.ts"

const wasm = new Uint8Array(NodeFs.readFileSync(NodePath.join(fixturesDir(), "extism", "hello-from-assemblyscript.wasm")))
const manifest = (version: string) => ({
  id: "hello",
  name: "Hello",
  version,
  description: "Says hello",
  publisher: "Ada",
  abi: "extism-v1",
  skills: [{ name: "hello", description: "Greets", input: { type: "string" }, output: { type: "string" }, pricing: { model: "fixed", credits: 1 }, sideEffects: "read" }]
})

const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-pull-"))
afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
const blobs = BlobStore.makeFilesystem(NodePath.join(dir, "blobs"))
const store = ArtifactStore.makeEmbedded(blobs)
const repo = "troupe/hello"
const publisher = Signing.generate()
const publisherKey = Either.getOrThrow(Signing.readPrivateKey(publisher.privateKeyPem))
const stranger = Either.getOrThrow(Signing.readPrivateKey(Signing.generate().privateKeyPem))
const trust: Pull.TrustPolicy = { trusted: [publisher.publicKey], allowUnsigned: false }

const publish = async (version: string, signer: "publisher" | "stranger" | "none" = "publisher", modules = [{ name: "main", bytes: wasm }]) => {
  const artifact = Oci.build(manifest(version), modules)
  const signature = signer === "none" ? undefined : Publish.sign(signer === "publisher" ? publisherKey : stranger, "hello", artifact.digest)
  await Effect.runPromise(Publish.pushSigned(store, repo, version, artifact, signature))
  return artifact
}

const refusal = async (effect: Effect.Effect<unknown, { readonly _tag: string }>) => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a typed failure, got ${Exit.isSuccess(exit) ? "success" : String(exit.cause)}`)
  return exit.cause.error as { readonly _tag: string; readonly code: string; readonly message: string }
}

describe("pull and verify", () => {
  it("a signed artifact by a trusted publisher comes back with its manifest and modules", async () => {
    const artifact = await publish("1.0.0")
    const verified = await Effect.runPromise(Pull.pull(store, repo, artifact.digest, trust))
    expect(verified.manifest.id).toBe("hello")
    expect(verified.publicKey).toBe(publisher.publicKey)
    expect(verified.trusted).toBe(true)
    expect(Buffer.from(verified.modules[0]!.bytes).equals(Buffer.from(wasm))).toBe(true)
  })

  it("refuses an unsigned artifact unless unsigned ones are allowed", async () => {
    const artifact = await publish("1.1.0", "none")
    const e = await refusal(Pull.pull(store, repo, artifact.digest, trust))
    expect(e.code).toBe("artifact_unsigned")
    expect(e.message).toContain("TROUPE_STORE_ALLOW_UNSIGNED")
    const allowed = await Effect.runPromise(Pull.pull(store, repo, artifact.digest, { ...trust, allowUnsigned: true }))
    expect(allowed.publicKey).toBeNull()
  })

  it("refuses an artifact signed by a key nobody trusts, naming the key", async () => {
    const artifact = await publish("1.2.0", "stranger")
    const e = await refusal(Pull.pull(store, repo, artifact.digest, trust))
    expect(e.code).toBe("publisher_untrusted")
    expect(e.message).toContain(Signing.publicKeyOf(stranger))
  })

  it("refuses a wrong signature, even when unsigned artifacts are allowed", async () => {
    const artifact = await publish("1.3.0", "none")
    // the trusted publisher's key named on a stranger's signature
    const forged = { publicKey: publisher.publicKey, signature: Publish.sign(stranger, "hello", artifact.digest).signature }
    await Effect.runPromise(ArtifactStore.push(store, repo, Oci.signatureTag(artifact.digest), Publish.signatureArtifact(repo, artifact.digest, forged)))
    for (const allowUnsigned of [false, true]) {
      const e = await refusal(Pull.pull(store, repo, artifact.digest, { ...trust, allowUnsigned }))
      expect(e.code).toBe("signature_invalid")
    }
    // a valid signature of another digest, copied onto this one
    const other = await publish("1.3.1")
    const copied = await Effect.runPromise(store.getManifest(repo, Oci.signatureTag(other.digest)))
    await Effect.runPromise(store.putManifest(repo, Oci.signatureTag(artifact.digest), copied))
    const e = await refusal(Pull.pull(store, repo, artifact.digest, trust))
    expect(e.code).toBe("signature_invalid")
    expect(e.message).toContain("not this digest")
  })

  it("refuses a tampered manifest and a tampered layer", async () => {
    const artifact = await publish("1.4.0")
    const manifestKey = `oci/blobs/sha256/${artifact.digest.slice(7)}`
    const tampered = new TextEncoder().encode(new TextDecoder().decode(artifact.manifestBytes).replace("1.4.0", "6.6.6"))
    await Effect.runPromise(blobs.put(manifestKey, tampered))
    const e1 = await refusal(Pull.pull(store, repo, artifact.digest, trust))
    expect(e1.code).toBe("digest_mismatch")
    expect(e1.message).toContain("manifest")

    const other = await publish("1.5.0")
    const layerKey = `oci/blobs/sha256/${other.layers[0]!.descriptor.digest.slice(7)}`
    const evil = wasm.slice()
    evil[evil.length - 1] = evil[evil.length - 1]! ^ 0xff
    await Effect.runPromise(blobs.put(layerKey, evil))
    const e2 = await refusal(Pull.pull(store, repo, other.digest, trust))
    expect(e2.code).toBe("digest_mismatch")
    expect(e2.message).toContain("layer main")
    await Effect.runPromise(blobs.put(layerKey, wasm))
  })

  it("caches verified bytes on disk, re-checks them, and loads from the cache while the store is down", async () => {
    const artifact = await publish("2.0.0")
    const cacheDir = NodePath.join(dir, "cache")
    await Effect.runPromise(Pull.pull(store, repo, artifact.digest, { ...trust, cacheDir }))
    const down: ArtifactStore.ArtifactStoreService = {
      ...store,
      getManifest: () => Effect.fail(new StoreUnavailable({ store: "test", message: "down" })),
      getBlob: () => Effect.fail(new StoreUnavailable({ store: "test", message: "down" }))
    }
    const cached = await Effect.runPromise(Pull.pull(down, repo, artifact.digest, { ...trust, cacheDir }))
    expect(cached.manifest.version).toBe("2.0.0")
    // trust is checked again on every load: a key no longer trusted is refused, cache or not
    expect((await refusal(Pull.pull(down, repo, artifact.digest, { trusted: [], allowUnsigned: false, cacheDir }))).code).toBe("publisher_untrusted")
    // a cached layer that was changed on disk is not used: it is pulled again (and here the store is down)
    NodeFs.writeFileSync(NodePath.join(cacheDir, artifact.layers[0]!.descriptor.digest.replace(":", "-")), "garbage")
    expect((await refusal(Pull.pull(down, repo, artifact.digest, { ...trust, cacheDir }))).code).toBe("registry_unavailable")
    const again = await Effect.runPromise(Pull.pull(store, repo, artifact.digest, { ...trust, cacheDir }))
    expect(Buffer.from(again.modules[0]!.bytes).equals(Buffer.from(wasm))).toBe(true)
  })
})
