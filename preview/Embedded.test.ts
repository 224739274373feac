/**
 * The preview routes as `troupe start` mounts them (`Server.layerEmbedded` on the runtime's server,
 * configuration from PREVIEW_* variables), and the `troupe preview check-url` command.
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Health from "../runtime/Health.ts"
import * as Http from "../runtime/Http.ts"
import * as Telemetry from "../runtime/Telemetry.ts"
import * as PreviewCli from "./Cli.ts"
import * as Server from "./Server.ts"
import { freePort, startOrigin } from "./testing/harness.ts"

describe("embedded in the main server (troupe start)", () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>
  let base: string
  let adminPort: number
  let scope: Scope.CloseableScope

  beforeAll(async () => {
    origin = await startOrigin()
    const port = await freePort()
    adminPort = await freePort()
    const env = new Map([
      ["PREVIEW_ANONYMOUS", "true"],
      ["PREVIEW_ALLOWED_PRIVATE_HOSTS", `127.0.0.1:${origin.port}`],
      ["PREVIEW_CACHE_DIR", NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "preview-embedded-"))],
      ["PREVIEW_WORKERS", "1"]
    ])
    // What Roles.layerStart builds: the runtime server with its operational routes and `startRoutes`.
    const layer = Layer.merge(
      Http.layerServer({ host: "127.0.0.1", port }).pipe(
        Layer.provide(Layer.mergeAll(Server.layerEmbedded, Http.layerOperationalRoutes())),
        Layer.provide(Http.Routes.Live)
      ),
      Http.layerAdminServer({ host: "127.0.0.1", port: adminPort, token: Option.none(), service: "start", version: "test" })
    ).pipe(
      Layer.provide(Layer.mergeAll(Health.layer(), Telemetry.layerMetricSources)),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(env))),
      Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
    )
    scope = Effect.runSync(Scope.make())
    await Effect.runPromise(Layer.buildWithScope(layer, scope))
    base = `http://127.0.0.1:${port}`
  })
  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await origin.close()
  })

  it("serves the image endpoint and registers its health details and metrics", async () => {
    const r = await fetch(`${base}/api/v1/image?url=${encodeURIComponent(`${origin.base}/images/concert.jpg`)}&max_width=40&format=png`)
    expect(r.status).toBe(200)
    expect(r.headers.get("content-type")).toBe("image/png")
    const detailed = (await (await fetch(`http://127.0.0.1:${adminPort}/health/detailed`)).json()) as { checks: Record<string, { status: string; details?: { engine: string } }> }
    expect(detailed.checks["preview"]?.status).toBe("healthy")
    expect(detailed.checks["preview"]?.details?.engine).toBe("vips")
    // the first scrape shows the pool and cache as they are; counters are typed as counters
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
    expect(metrics).toMatch(/^preview_cache_entries\{kind="image"\} [1-9]/m)
    expect(metrics).toContain("# TYPE preview_cache_misses_total counter")
    expect(metrics).toContain("# TYPE preview_pool_workers_ready gauge")
  })

  it("refuses private addresses with the standard JSON error", async () => {
    const r = await fetch(`${base}/api/v1/metadata?url=${encodeURIComponent("http://169.254.169.254/")}`)
    expect(r.status).toBe(403)
    expect(await r.json()).toEqual({ error: { code: "blocked_address", message: expect.stringContaining("169.254.169.254") } })
  })
})

describe("troupe preview check-url", () => {
  const run = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
    const lines: Array<string> = []
    const write = process.stdout.write.bind(process.stdout)
    const previousExit = process.exitCode
    process.exitCode = 0
    process.stdout.write = ((chunk: string | Uint8Array) => {
      lines.push(String(chunk))
      return true
    }) as typeof process.stdout.write
    try {
      const cli = Command.run(PreviewCli.command, { name: "troupe", version: "test" })
      await Effect.runPromise(
        cli(["node", "troupe", ...args]).pipe(
          Effect.provide(NodeContext.layer),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      )
    } finally {
      process.stdout.write = write
    }
    const exitCode = process.exitCode
    process.exitCode = previousExit
    return { out: lines.join("").trim(), exitCode }
  }

  it("prints ALLOW (exit 0) for a public address and BLOCK <reason> (exit 1) otherwise", async () => {
    expect(await run(["check-url", "https://93.184.216.34/"])).toEqual({ out: "ALLOW", exitCode: 0 })
    const blocked = await run(["check-url", "http://0x7f.1/"])
    expect(blocked.out).toMatch(/^BLOCK blocked_address: 127\.0\.0\.1 is loopback$/)
    expect(blocked.exitCode).toBe(1)
    expect((await run(["check-url", "gopher://example.com/"])).out).toMatch(/^BLOCK blocked_scheme/)
  })

  it("answers names from --resolve (repeatable, comma-separated addresses)", async () => {
    expect((await run(["check-url", "--resolve", "api.example=93.184.216.34", "https://api.example/"])).out).toBe("ALLOW")
    expect((await run(["check-url", "--resolve", "api.example=93.184.216.34,192.168.0.10", "https://api.example/"])).out).toMatch(
      /^BLOCK blocked_address: api\.example resolves to 192\.168\.0\.10/
    )
    expect((await run(["check-url", "--resolve", "a.example=8.8.8.8", "--resolve", "b.example=[::1]", "http://b.example/"])).out).toMatch(/^BLOCK/)
  })

  it("applies PREVIEW_ALLOWED_PRIVATE_HOSTS", async () => {
    expect((await run(["check-url", "http://10.0.0.5:8080/"], { PREVIEW_ALLOWED_PRIVATE_HOSTS: "10.0.0.5:8080" })).out).toBe("ALLOW")
  })
})
