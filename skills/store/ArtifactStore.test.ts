/**
 * Both artifact stores keep an app's artifact the same way: blobs by digest, manifests by tag and
 * by digest, tags listed; the registry one against Debian's real `docker-registry`, with and
 * without basic authentication, and failing fast with `registry_unavailable` when the registry
 * is down or does not answer.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as BlobStore from "../../runtime/BlobStore.ts"
import { freePort } from "../../runtime/testing/process.ts"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"
import * as ArtifactStore from "./ArtifactStore.ts"
import * as Oci from "./Oci.ts"
import { startRegistry, type TestRegistry } from "./testing/registry.ts"

const wasm = new Uint8Array(NodeFs.readFileSync(NodePath.join(fixturesDir(), "extism", "hello-from-assemblyscript.wasm")))
const artifact = Oci.build({ id: "hello", version: "1.0.0" }, [{ name: "main", bytes: wasm }])

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
const failure = async <A, E>(effect: Effect.Effect<A, E>) => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const e = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (e === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return e as E & { readonly _tag: string; readonly code: string; readonly message: string }
}

/** The behaviour both stores share. */
const roundTrip = async (store: ArtifactStore.ArtifactStoreService) => {
  await run(ArtifactStore.push(store, "troupe/hello", "1.0.0", artifact))
  const byTag = await run(store.getManifest("troupe/hello", "1.0.0"))
  expect(Oci.digestOf(byTag)).toBe(artifact.digest)
  const byDigest = await run(store.getManifest("troupe/hello", artifact.digest))
  expect(Buffer.from(byDigest).equals(Buffer.from(artifact.manifestBytes))).toBe(true)
  const layer = await run(store.getBlob("troupe/hello", artifact.layers[0]!.descriptor.digest, 10_000_000))
  expect(Buffer.from(layer).equals(Buffer.from(wasm))).toBe(true)
  expect(await run(store.hasBlob("troupe/hello", artifact.config.descriptor.digest))).toBe(true)
  expect(await run(store.listTags("troupe/hello"))).toEqual(["1.0.0"])
  expect(await run(store.listRepositories)).toContain("troupe/hello")
  expect(await run(store.listTags("troupe/nothing"))).toEqual([])
  expect((await failure(store.getManifest("troupe/hello", "9.9.9"))).code).toBe("artifact_not_found")
  const tooLarge = await failure(store.getBlob("troupe/hello", artifact.layers[0]!.descriptor.digest, 100))
  expect(tooLarge.code).toBe("artifact_too_large")
  // moving a tag points it at the new manifest; the old one stays reachable by digest
  const next = Oci.build({ id: "hello", version: "1.0.0-moved" }, [{ name: "main", bytes: wasm }])
  await run(ArtifactStore.push(store, "troupe/hello", "1.0.0", next))
  expect(Oci.digestOf(await run(store.getManifest("troupe/hello", "1.0.0")))).toBe(next.digest)
  expect(Oci.digestOf(await run(store.getManifest("troupe/hello", artifact.digest)))).toBe(artifact.digest)
}

describe("embedded artifact store (blob store)", () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-oci-"))
  afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

  it("keeps blobs, manifests and tags with the OCI layout", async () => {
    const blobs = BlobStore.makeFilesystem(dir)
    await roundTrip(ArtifactStore.makeEmbedded(blobs))
    // content-addressed: the layer is stored under its digest
    const hex = artifact.layers[0]!.descriptor.digest.slice("sha256:".length)
    expect(NodeFs.existsSync(NodePath.join(dir, "data", "oci", "blobs", "sha256", hex))).toBe(true)
  })
})

describe("registry artifact store (docker-registry)", () => {
  let open: TestRegistry
  let authed: TestRegistry
  beforeAll(async () => {
    ;[open, authed] = await Promise.all([startRegistry(), startRegistry({ basicAuth: { username: "ci", password: "s3cret-pass" } })])
  }, 30_000)
  afterAll(async () => {
    await Promise.all([open?.stop(), authed?.stop()])
  })

  it("pushes and pulls an artifact", async () => {
    await roundTrip(ArtifactStore.makeRegistry({ url: open.url }))
  })

  it("authenticates with basic credentials, and says so when they are missing or wrong", async () => {
    await roundTrip(ArtifactStore.makeRegistry({ url: authed.url, username: "ci", password: Redacted.make("s3cret-pass") }))
    const none = await failure(ArtifactStore.makeRegistry({ url: authed.url }).getManifest("troupe/hello", "1.0.0"))
    expect(none.code).toBe("registry_refused")
    expect(none.message).toContain("TROUPE_REGISTRY_USERNAME")
    const wrong = await failure(ArtifactStore.makeRegistry({ url: authed.url, username: "ci", password: Redacted.make("nope") }).listTags("troupe/hello"))
    expect(wrong.code).toBe("registry_refused")
  })

  it("fails fast with registry_unavailable when the registry is down or silent", async () => {
    const closed = await freePort()
    const started = performance.now()
    const down = await failure(ArtifactStore.makeRegistry({ url: `http://127.0.0.1:${closed}` }).getManifest("troupe/hello", "1.0.0"))
    expect(down.code).toBe("registry_unavailable")
    expect(down.message).toContain("unreachable")
    expect(performance.now() - started).toBeLessThan(5_000)

    // a server that accepts connections and never answers
    const sockets: Array<NodeNet.Socket> = []
    const silent = NodeNet.createServer((s) => void sockets.push(s))
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    const port = (silent.address() as NodeNet.AddressInfo).port
    const hung = await failure(ArtifactStore.makeRegistry({ url: `http://127.0.0.1:${port}`, timeoutMs: 300 }).getBlob("troupe/hello", artifact.digest, 100))
    expect(hung.code).toBe("registry_unavailable")
    expect(hung.message).toContain("no answer within 300 ms")
    for (const s of sockets) s.destroy()
    silent.close()
  })
})
