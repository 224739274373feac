/**
 * The store end to end below the HTTP layer, on both artifact stores: publish a signed version,
 * find it in the catalog, install it (refused until its key is trusted), call it through the
 * skills registry, hold an escalating upgrade for approval while the old version keeps serving,
 * keep config encrypted, refuse a tampered artifact, and stop calls after an uninstall.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as BlobStore from "../../runtime/BlobStore.ts"
import * as Database from "../../runtime/Database.ts"
import * as KeyRing from "../../runtime/KeyRing.ts"
import * as Migrations from "../../runtime/Migrations.ts"
import * as PgliteClient from "../../runtime/PgliteClient.ts"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import * as Host from "../host/Host.ts"
import * as KvStore from "../host/KvStore.ts"
import * as Skills from "../Skills.ts"
import * as ArtifactStore from "./ArtifactStore.ts"
import * as Catalog from "./Catalog.ts"
import { StoreConfig, type StoreSettings } from "./Config.ts"
import * as Installed from "./Installed.ts"
import * as Installs from "./Installs.ts"
import * as Oci from "./Oci.ts"
import * as Publish from "./Publish.ts"
import * as Signing from "./Signing.ts"
import * as Store from "./Store.ts"
import { startRegistry, type TestRegistry } from "./testing/registry.ts"

const wasm = new Uint8Array(NodeFs.readFileSync(NodePath.join(fixturesDir(), "extism", "hello-from-assemblyscript.wasm")))
const manifest = (version: string, allowedHosts: Array<string> = []) => ({
  id: "hello",
  name: "Hello",
  version,
  description: "Greets whoever asks, from AssemblyScript",
  publisher: "Ada",
  categories: ["fun"],
  abi: "extism-v1",
  permissions: { allowedHosts, wasi: false, hostFunctions: ["secret_get"] },
  config: [{ key: "greeting", required: false }, { key: "token", secret: true }],
  skills: [{ name: "hello", description: "Says hello", input: { type: "string" }, output: { type: "string" }, pricing: { model: "fixed", credits: 1 }, sideEffects: "read" }]
})

const publisher = Signing.generate()
const publisherKey = Either.getOrThrow(Signing.readPrivateKey(publisher.privateKeyPem))

type Services = Store.Store | Skills.Skills | Installed.InstalledApps | KeyRing.KeyRing | import("@effect/sql/SqlClient").SqlClient

const makeRuntime = (database: Layer.Layer<import("@effect/sql/SqlClient").SqlClient, unknown>, artifacts: Layer.Layer<ArtifactStore.ArtifactStore>, cacheDir: string) => {
  const settings: StoreSettings = { registry: Option.none(), namespace: "troupe", allowUnsigned: false, cacheDir, maxArtifactBytes: 8 * 1024 * 1024, pollIntervalMs: 100 }
  const migrated = Layer.effectDiscard(Migrations.run([...KeyRing.migrations, ...KvStore.migrations, ...Catalog.migrations])).pipe(Layer.provideMerge(database))
  const platform = Layer.mergeAll(migrated, Layer.succeed(StoreConfig, settings), artifacts)
  const store = Store.layer.pipe(Layer.provideMerge(Catalog.layer), Layer.provideMerge(platform))
  const keys = KeyRing.layer(KeyRing.masterKeys(globalThis.crypto.getRandomValues(new Uint8Array(32))))
  const skills = Skills.layer([]).pipe(Layer.provideMerge(Host.layer({ poolSize: 1 })), Layer.provide(KvStore.layerMemory()))
  return ManagedRuntime.make(
    Installed.layer.pipe(Layer.provideMerge(skills), Layer.provideMerge(keys), Layer.provideMerge(store)) as Layer.Layer<Services, unknown>
  )
}

const failure = async (runtime: ManagedRuntime.ManagedRuntime<Services, unknown>, effect: Effect.Effect<unknown, unknown, Services>) => {
  const exit = await runtime.runPromiseExit(effect)
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a typed failure, got ${Exit.isSuccess(exit) ? "success" : String(exit.cause)}`)
  return exit.cause.error as { readonly _tag: string; readonly code: string; readonly message: string }
}

/** Publish through the store service as the API does: blobs, then the signed manifest. */
const publishVersion = (version: string, options: { readonly allowedHosts?: Array<string>; readonly signed?: boolean } = {}) =>
  Effect.gen(function*() {
    const store = yield* Store.Store
    const artifact = Oci.build(manifest(version, options.allowedHosts), [{ name: "main", bytes: wasm }])
    for (const blob of [artifact.config, ...artifact.layers]) yield* store.uploadBlob("hello", blob.descriptor.digest, blob.bytes)
    const signature = options.signed === false ? null : Publish.sign(publisherKey, "hello", artifact.digest)
    return yield* store.publish({ appId: "hello", manifestBytes: artifact.manifestBytes, signature, userId: "author", isAdmin: false })
  })

const ops = Effect.gen(function*() {
  return Installs.make(yield* Store.Store, yield* KeyRing.KeyRing)
})

const call = Effect.gen(function*() {
  const skills = yield* Skills.Skills
  return yield* skills.invoke({ app: "hello", skill: "hello", input: "Hi!", userId: "u1" })
})

const flow = (name: string, setup: () => Promise<{ readonly runtime: ManagedRuntime.ManagedRuntime<Services, unknown>; readonly tamper?: (digest: string) => Promise<void> }>) =>
  describe(`app store flow (${name})`, () => {
    let runtime: ManagedRuntime.ManagedRuntime<Services, unknown>
    let tamper: ((digest: string) => Promise<void>) | undefined
    beforeAll(async () => {
      ;({ runtime, tamper } = await setup())
    }, 60_000)
    afterAll(async () => {
      await runtime?.dispose()
    })

    it("publish → browse → install (once the key is trusted) → call", async () => {
      const v1 = await runtime.runPromise(publishVersion("1.0.0"))
      expect(v1.publicKey).toBe(publisher.publicKey)
      const page = await runtime.runPromise(Effect.flatMap(Store.Store, (s) => s.catalog.search({ q: "assemblyscript", limit: 10, offset: 0 })))
      expect(page.apps.map((a) => a.appId)).toEqual(["hello"])
      const byCategory = await runtime.runPromise(Effect.flatMap(Store.Store, (s) => s.catalog.search({ category: "fun", limit: 10, offset: 0 })))
      expect(byCategory.total).toBe(1)
      expect((await failure(runtime, publishVersion("1.0.0"))).code).toBe("version_exists")

      const untrusted = await failure(runtime, Effect.flatMap(ops, (o) => o.install("hello", "1.0.0", "admin")))
      expect(untrusted.code).toBe("publisher_untrusted")
      await runtime.runPromise(Effect.flatMap(Store.Store, (s) => s.catalog.trust({ publicKey: publisher.publicKey, name: "Ada", addedBy: "admin" })))
      const install = await runtime.runPromise(Effect.flatMap(ops, (o) => o.install("hello", "1.0.0", "admin")))
      expect(install.digest).toBe(v1.digest)

      await runtime.runPromise(Effect.flatMap(Installed.InstalledApps, (i) => i.refresh))
      const listed = await runtime.runPromise(Effect.flatMap(Skills.Skills, (s) => s.get("hello")))
      expect(listed.version).toBe("1.0.0")
      const result = await runtime.runPromise(call)
      expect(result.result).toBe("\"Hi!\"\nHello from AssemblyScript!")
      expect(result.credits).toBe(1)
    })

    it("an upgrade that adds an allowed host waits for approval; the old version serves meanwhile", async () => {
      await runtime.runPromise(publishVersion("1.1.0", { allowedHosts: ["api.example.com"] }))
      const upgrade = await runtime.runPromise(Effect.flatMap(ops, (o) => o.upgrade("hello", "1.1.0", "admin")))
      expect(upgrade.status).toBe("pending")
      expect(upgrade.diff.changes).toMatchObject([{ field: "permissions.allowedHosts", escalates: true }])
      await runtime.runPromise(Effect.flatMap(Installed.InstalledApps, (i) => i.refresh))
      expect((await runtime.runPromise(Effect.flatMap(Skills.Skills, (s) => s.get("hello")))).version).toBe("1.0.0")
      expect((await runtime.runPromise(call)).result).toContain("Hello from AssemblyScript")
      await runtime.runPromise(Effect.flatMap(ops, (o) => o.approve("hello", "1.1.0", "admin")))
      await runtime.runPromise(Effect.flatMap(Installed.InstalledApps, (i) => i.refresh))
      expect((await runtime.runPromise(Effect.flatMap(Skills.Skills, (s) => s.get("hello")))).version).toBe("1.1.0")
      expect((await runtime.runPromise(call)).result).toContain("Hello from AssemblyScript")
    })

    it("keeps config and secrets encrypted and shows only which keys are set", async () => {
      const configured = await runtime.runPromise(Effect.flatMap(ops, (o) => o.configure("hello", { config: { greeting: "Hey" }, secrets: { token: "tok-very-secret" } })))
      expect(configured.configKeys).toEqual(["greeting"])
      expect(configured.secretKeys).toEqual(["token"])
      expect(Buffer.from(configured.secrets!).toString("latin1")).not.toContain("tok-very-secret")
      const resolved = await runtime.runPromise(Effect.flatMap(KeyRing.KeyRing, (k) => Installs.resolveConfig(k, configured)))
      expect(resolved).toEqual({ config: { greeting: "Hey" }, secrets: { token: "tok-very-secret" } })
      const bad = await failure(runtime, Effect.flatMap(ops, (o) => o.configure("hello", { config: { token: "x", nope: "y" }, secrets: {} })))
      expect(bad.code).toBe("invalid_config")
    })

    it("refuses an unsigned publish and a tampered artifact", async () => {
      expect((await failure(runtime, publishVersion("1.2.0", { signed: false }))).code).toBe("artifact_unsigned")
      if (tamper) {
        const v2 = await runtime.runPromise(publishVersion("2.0.0"))
        await tamper(v2.digest)
        const refused = await failure(runtime, Effect.flatMap(ops, (o) => o.upgrade("hello", "2.0.0", "admin")))
        expect(refused.code).toBe("digest_mismatch")
      }
    })

    it("uninstalling stops new calls", async () => {
      await runtime.runPromise(Effect.flatMap(ops, (o) => o.uninstall("hello", "admin")))
      await runtime.runPromise(Effect.flatMap(Installed.InstalledApps, (i) => i.refresh))
      expect((await failure(runtime, call)).code).toBe("app_not_found")
    })
  })

const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-store-"))
let registry: TestRegistry | undefined
let pg: Awaited<ReturnType<typeof createTestDatabase>> | undefined
afterAll(async () => {
  await registry?.stop()
  await pg?.drop()
  NodeFs.rmSync(dir, { recursive: true, force: true })
})

flow("embedded store, PGlite", async () => {
  const blobs = BlobStore.makeFilesystem(NodePath.join(dir, "blobs"))
  const runtime = makeRuntime(PgliteClient.layer({ dataDir: undefined }), Layer.succeed(ArtifactStore.ArtifactStore, ArtifactStore.makeEmbedded(blobs)), NodePath.join(dir, "cache-a"))
  return {
    runtime,
    // rewrite the stored manifest: the artifact no longer matches the digest the catalog pinned
    tamper: async (digest) => {
      const key = `oci/blobs/sha256/${digest.slice(7)}`
      const bytes = Option.getOrThrow(await Effect.runPromise(blobs.get(key)))
      await Effect.runPromise(blobs.put(key, new TextEncoder().encode(new TextDecoder().decode(bytes).replace("\"layers\"", " \"layers\""))))
    }
  }
})

flow("docker-registry, Postgres", async () => {
  registry = await startRegistry()
  pg = await createTestDatabase("store")
  const runtime = makeRuntime(
    Database.layerPostgres({ url: Redacted.make(pg.url), maxConnections: 4 }),
    ArtifactStore.layerRegistry({ url: registry.url }),
    NodePath.join(dir, "cache-b")
  )
  return { runtime }
})
