/**
 * An app installed through a gateway is served by every runner: a `troupe gateway` and two
 * `troupe runner` processes on Postgres with a real OCI registry (`docker-registry`). The admin
 * publishes the example `greeter` app (built from source, signed) through the gateway's store API,
 * trusts the key and installs it; calls through the gateway are spread over the app's `SkillCall`
 * entities, so each runner pulls the artifact by digest into its own cache, loads it and serves a
 * share of the calls (its own `/metrics` counts them). After an uninstall through the gateway
 * every runner drops the app within a poll and calls are refused (`404 app_not_found`) with no
 * runner serving one.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { onboard } from "../gateway/testing/flows.ts"
import { initialInvite } from "../gateway/testing/server.ts"
import type { Spawned } from "../runtime/testing/process.ts"
import * as Manifest from "../skills/manifest/Manifest.ts"
import * as Project from "../skills/sdk/Project.ts"
import * as Client from "../skills/store/Client.ts"
import * as Signing from "../skills/store/Signing.ts"
import { startRegistry, type TestRegistry } from "../skills/store/testing/registry.ts"
import { type Deployment, json, startDeployment } from "./testing/deployment.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Poll `check` every 100 ms until it returns a value; throws after `ms`. */
const eventually = async <A>(what: string, ms: number, check: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(100)
  }
}

/** A runner's own count of successful `greeter.greet` calls, from its `/metrics`. */
const servedBy = async (adminPort: number): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  return text.split("\n")
    .filter((line) => line.startsWith("troupe_skill_calls_total{") && line.includes("app=\"greeter\"") && line.includes("skill=\"greet\"") && line.includes("outcome=\"ok\""))
    .reduce((n, line) => n + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)
}

/** The runner's log records with `message`, for app greeter. */
const logged = (proc: Spawned, message: string) =>
  proc.logs().filter((l) => l.message === message && (l.context as Record<string, unknown> | undefined)?.app === "greeter")

let registry: TestRegistry | undefined
let deployment: Deployment | undefined
const dirs: Array<string> = []
const tempDir = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-store-runners-"))
  dirs.push(dir)
  return dir
}
const logDir = process.env.TROUPE_TEST_LOG_DIR

beforeAll(async () => {
  registry = await startRegistry()
}, 30_000)

afterAll(async () => {
  await deployment?.close({ logDir })
  await registry?.stop()
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

describe("an app installed through a gateway, two runners on Postgres", () => {
  it("is pulled and served by both runners; after an uninstall neither serves it", async () => {
    const began = Date.now()
    const caches = [tempDir(), tempDir()]
    // the example app, compiled to a temp file (the examples' own test builds it in place)
    const example = NodePath.join(import.meta.dirname, "..", "skills", "examples", "greeter")
    const build = Effect.gen(function*() {
      const project = yield* Project.read(example)
      const bytes = yield* Project.compileSource(example, project.entry, NodePath.join(tempDir(), "greeter.wasm"))
      yield* Either.match(Project.check(project.manifest, bytes), { onLeft: Effect.fail, onRight: () => Effect.void })
      return { manifest: project.manifest, bytes }
    })
    const [built, started] = await Promise.all([
      Effect.runPromise(build),
      startDeployment({
        runners: 2,
        label: "storerunners",
        // info: the runners' "Installed app loaded" / "removed" lines
        env: { TROUPE_REGISTRY_URL: registry!.url, TROUPE_LOG_LEVEL: "info" },
        runnerEnv: (i) => ({ TROUPE_STORE_CACHE_DIR: caches[i]! })
      })
    ])
    deployment = started
    const upAfterMs = Date.now() - began
    const { runners, url } = deployment
    const admin = (await onboard({ url, dataDir: deployment.gatewayDir }, "root", initialInvite(deployment.gatewayDir))).access

    // publish (signed) through the gateway, trust the key, install
    const keys = Signing.generate()
    const published = await Effect.runPromise(Client.publish({ url, token: admin }, {
      manifest: Manifest.encode(built.manifest),
      modules: [{ name: "main", bytes: built.bytes }],
      privateKey: Either.getOrThrow(Signing.readPrivateKey(keys.privateKeyPem))
    }))
    expect(published).toMatchObject({ app: "greeter", version: "1.0.0" })
    expect((await json(url, "POST", "/v1/admin/publishers", { public_key: keys.publicKey, name: "Examples" }, admin)).status).toBe(201)
    const install = await json(url, "POST", "/v1/admin/apps/greeter/install", { version: "1.0.0" }, admin)
    expect(install.status, JSON.stringify(install.body)).toBe(201)
    expect(install.body.digest).toBe(published.digest)
    const installedAt = Date.now()

    // callable through the gateway within seconds, listed in GET /v1/apps
    const call = () => json(url, "POST", "/v1/apps/greeter/skills/greet", { input: { name: "Ada" } }, admin)
    const listed = async () => ((await json(url, "GET", "/v1/apps", undefined, admin)).body.apps as Array<{ id: string }>).map((a) => a.id)
    let ok = 0
    await eventually("the installed app answers", 20_000, async () => {
      const r = await call()
      if (r.status === 200) ok++
      return r.status === 200 ? r : undefined
    })
    const callableAfterMs = Date.now() - installedAt
    await eventually("the gateway lists the app", 10_000, async () => (await listed()).includes("greeter") || undefined)
    // the other runner learns of the install on its own (under the suite's load, later than the first):
    // wait until 16 calls in a row answer (each goes to one of 16 call entities spread over both runners)
    await eventually("both runners serve the app", 30_000, async () => {
      for (let i = 0; i < 16; i++) {
        if ((await call()).status !== 200) return undefined
        ok++
      }
      return true
    })
    const servedByBothAfterMs = Date.now() - installedAt

    // many calls, four at a time: every one answers, and both runners serve a share
    const answers = await Promise.all(Array.from({ length: 4 }, async () => {
      const mine: Array<Awaited<ReturnType<typeof json>>> = []
      for (let i = 0; i < 12; i++) mine.push(await call())
      return mine
    }))
    for (const r of answers.flat()) {
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      expect(r.body.result).toEqual({ greeting: "Hello, Ada!" })
      expect(r.body.credits_charged).toBe(1)
    }
    ok += answers.flat().length
    const served = await Promise.all(runners.map((r) => servedBy(r.adminPort)))
    process.stdout.write(
      `[store-runners] gateway and runners up (app built) in ${upAfterMs} ms; callable ${callableAfterMs} ms after the install, by both runners after ${servedByBothAfterMs} ms; calls served per runner: ${JSON.stringify(served)}\n`
    )
    expect(served.every((n) => n > 0), `served per runner: ${served.join(", ")}`).toBe(true)
    expect(served.reduce((a, b) => a + b, 0)).toBe(ok)
    const cached = `${published.digest.replace(":", "-")}`
    for (const [i, r] of runners.entries()) {
      // each runner pulled the artifact by digest into its own cache and loaded it once
      expect(NodeFs.readdirSync(caches[i]!), `runner ${i}'s cache`).toContain(cached)
      expect(logged(r.proc, "Installed app loaded").map((l) => (l.context as Record<string, unknown>).digest)).toEqual([published.digest])
    }

    // uninstall through the gateway: every runner drops the app within a poll, calls are refused
    expect((await json(url, "POST", "/v1/admin/apps/greeter/uninstall", undefined, admin)).status).toBe(204)
    const uninstalledAt = Date.now()
    await eventually("both runners drop the app", 15_000, async () => runners.every((r) => logged(r.proc, "Installed app removed").length === 1) || undefined)
    const droppedAfterMs = Date.now() - uninstalledAt
    const refused = await Promise.all(Array.from({ length: 24 }, () => call()))
    for (const r of refused) {
      expect(r.status, JSON.stringify(r.body)).toBe(404)
      expect(r.body.error.code).toBe("app_not_found")
    }
    expect(await Promise.all(runners.map((r) => servedBy(r.adminPort)))).toEqual(served)
    await eventually("the gateway stops listing the app", 10_000, async () => !(await listed()).includes("greeter") || undefined)
    process.stdout.write(`[store-runners] both runners dropped the app ${droppedAfterMs} ms after the uninstall\n`)
  }, 240_000)
})
