/**
 * The app store through the gateway, as authors and admins use it: publish a signed skill over
 * HTTP (blobs, then the signed manifest), browse it, trust its key, install it, call it through
 * `POST /v1/apps/{app}/skills/{skill}`, see it in `GET /v1/apps`; an escalating upgrade waits for
 * approval with its diff while the old version serves; a tampered artifact and an untrusted key
 * are refused with their own codes; uninstalling stops calls. On the embedded store (PGlite) and
 * on a real registry (docker-registry, Postgres).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fixturesDir } from "../runtime/testing/fixtures.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import * as Client from "../skills/store/Client.ts"
import * as Signing from "../skills/store/Signing.ts"
import { startRegistry, type TestRegistry } from "../skills/store/testing/registry.ts"
import { onboard } from "./testing/flows.ts"
import { initialInvite, request, startServer, type TestServer } from "./testing/server.ts"

const wasm = new Uint8Array(NodeFs.readFileSync(NodePath.join(fixturesDir(), "extism", "hello-from-assemblyscript.wasm")))
const manifest = (version: string, allowedHosts: Array<string> = []) => ({
  id: "hello",
  name: "Hello",
  version,
  description: "Greets whoever asks, from AssemblyScript",
  publisher: "Ada",
  categories: ["fun"],
  abi: "extism-v1",
  permissions: { allowedHosts, wasi: false, hostFunctions: [] },
  skills: [{ name: "hello", description: "Says hello", input: { type: "string" }, output: { type: "string" }, pricing: { model: "fixed", credits: 1 }, sideEffects: "read" }]
})

const keys = Signing.generate()
const privateKey = Either.getOrThrow(Signing.readPrivateKey(keys.privateKeyPem))
const strangerKey = Either.getOrThrow(Signing.readPrivateKey(Signing.generate().privateKeyPem))

const suite = (name: string, start: () => Promise<TestServer>) =>
  describe(`app store through the gateway (${name})`, () => {
    let s: TestServer
    let admin: string
    let author: { readonly userId: string; readonly access: string }
    let publishKey: string
    beforeAll(async () => {
      s = await start()
      admin = (await onboard(s, "root", initialInvite(s.dataDir))).access
      const invite = await request(s, "POST", "/v1/admin/invites", { token: admin, body: { uses: 1 } })
      author = await onboard(s, "author", invite.body.code)
      const key = await request(s, "POST", "/v1/api_keys", { token: author.access, body: { name: "publish", scopes: ["publish"] } })
      expect(key.status, JSON.stringify(key.body)).toBe(201)
      publishKey = key.body.key
    }, 120_000)
    afterAll(async () => {
      await s?.close()
    })

    const publish = (version: string, options: { readonly allowedHosts?: Array<string>; readonly key?: typeof privateKey | null } = {}) =>
      Effect.runPromise(Effect.either(Client.publish({ url: s.url, token: publishKey }, {
        manifest: manifest(version, options.allowedHosts),
        modules: [{ name: "main", bytes: wasm }],
        ...(options.key === null ? {} : { privateKey: options.key ?? privateKey })
      })))

    it("publish needs the publisher role; then browse, trust, install and call", async () => {
      const refused = await publish("1.0.0")
      expect(Either.isLeft(refused) && refused.left.code).toBe("publisher_required")
      expect((await request(s, "PUT", `/v1/admin/users/${author.userId}/publisher`, { token: admin })).status).toBe(200)
      const sent: Array<number> = []
      const published = await Effect.runPromise(Client.publish({ url: s.url, token: publishKey }, {
        manifest: manifest("1.0.0"),
        modules: [{ name: "main", bytes: wasm }],
        privateKey,
        progress: (n) => sent.push(n)
      }))
      expect(published.version).toBe("1.0.0")
      expect(sent.at(-1)).toBeGreaterThan(wasm.byteLength)

      const list = await request(s, "GET", "/v1/store/apps?q=assemblyscript", { token: author.access })
      expect(list.status).toBe(200)
      expect(list.body.apps).toMatchObject([{ id: "hello", latest_version: "1.0.0", installed_version: null }])
      const shown = await request(s, "GET", "/v1/store/apps/hello", { token: author.access })
      expect(shown.body.versions[0]).toMatchObject({ version: "1.0.0", digest: published.digest, signature: { public_key: keys.publicKey, trusted: false } })
      expect(shown.body.versions[0].skills[0]).toMatchObject({ id: "hello.hello", price: expect.any(String) })

      const untrusted = await request(s, "POST", "/v1/admin/apps/hello/install", { token: admin, body: { version: "1.0.0" } })
      expect(untrusted.status).toBe(422)
      expect(untrusted.body.error.code).toBe("publisher_untrusted")
      expect((await request(s, "POST", "/v1/admin/publishers", { token: admin, body: { public_key: keys.publicKey, name: "Ada" } })).status).toBe(201)
      const installed = await request(s, "POST", "/v1/admin/apps/hello/install", { token: admin, body: { version: "1.0.0" } })
      expect(installed.status, JSON.stringify(installed.body)).toBe(201)
      expect(installed.body).toMatchObject({ app: "hello", version: "1.0.0", digest: published.digest })

      const apps = await request(s, "GET", "/v1/apps", { token: author.access })
      expect(apps.body.apps.map((a: { id: string }) => a.id)).toContain("hello")
      const called = await request(s, "POST", "/v1/apps/hello/skills/hello", { token: author.access, body: { input: "Hi!" } })
      expect(called.status, JSON.stringify(called.body)).toBe(200)
      expect(called.body).toEqual({ result: "\"Hi!\"\nHello from AssemblyScript!", credits_charged: 1 })
    })

    it("an upgrade that adds an allowed host waits for approval with its diff; the old version serves meanwhile", async () => {
      expect(Either.isRight(await publish("1.1.0", { allowedHosts: ["api.example.com"] }))).toBe(true)
      const upgrade = await request(s, "POST", "/v1/admin/apps/hello/upgrade", { token: admin, body: { version: "1.1.0" } })
      expect(upgrade.status, JSON.stringify(upgrade.body)).toBe(200)
      expect(upgrade.body.status).toBe("pending")
      const diff = await request(s, "GET", "/v1/admin/apps/hello/upgrade/1.1.0", { token: admin })
      expect(diff.body).toMatchObject({ from: "1.0.0", to: "1.1.0", escalates: true, status: "pending" })
      expect(diff.body.changes).toMatchObject([{ field: "permissions.allowedHosts", from: [], to: ["api.example.com"], escalates: true }])
      expect((await request(s, "GET", "/v1/apps/hello", { token: author.access })).body.version).toBe("1.0.0")
      expect((await request(s, "POST", "/v1/apps/hello/skills/hello", { token: author.access, body: { input: "Hi!" } })).status).toBe(200)
      const approved = await request(s, "POST", "/v1/admin/apps/hello/upgrade/1.1.0/approve", { token: admin })
      expect(approved.status, JSON.stringify(approved.body)).toBe(200)
      expect(approved.body.version).toBe("1.1.0")
      expect((await request(s, "GET", "/v1/apps/hello", { token: author.access })).body.version).toBe("1.1.0")
    })

    it("refuses an unsigned version, a wrong signature and a version signed by an untrusted key, each with its own code", async () => {
      const unsigned = await publish("1.2.0", { key: null })
      expect(Either.isLeft(unsigned) && unsigned.left.code).toBe("artifact_unsigned")
      const stranger = await publish("1.3.0", { key: strangerKey })
      expect(Either.isRight(stranger)).toBe(true)
      const untrusted = await request(s, "POST", "/v1/admin/apps/hello/upgrade", { token: admin, body: { version: "1.3.0" } })
      expect(untrusted.body.error.code).toBe("publisher_untrusted")
      const forged = await Effect.runPromise(Effect.either(Client.send({ url: s.url, token: publishKey }, "POST", "/v1/store/apps", {
        app: "hello",
        manifest: Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: "x", digest: `sha256:${"0".repeat(64)}`, size: 1 }, layers: [] })).toString("base64"),
        signature: null
      })))
      expect(Either.isLeft(forged) && forged.left.code).toBe("invalid_artifact")
    })

    it("uninstalling stops new calls", async () => {
      expect((await request(s, "POST", "/v1/admin/apps/hello/uninstall", { token: admin })).status).toBe(204)
      const gone = await request(s, "POST", "/v1/apps/hello/skills/hello", { token: author.access, body: { input: "Hi!" } })
      expect(gone.status).toBe(404)
      expect(gone.body.error.code).toBe("app_not_found")
    })
  })

suite("embedded store", () => startServer({}))

let registry: TestRegistry | undefined
let pg: Awaited<ReturnType<typeof createTestDatabase>> | undefined
afterAll(async () => {
  await registry?.stop()
  await pg?.drop()
})
suite("docker-registry", async () => {
  registry = await startRegistry()
  pg = await createTestDatabase("storegw")
  return startServer({ databaseUrl: pg.url, store: { registry: Option.some({ url: registry.url }) } })
})
