/** Troupe runs on Deno too: the same entry point serves `/health` on the embedded default. */
import { afterAll, describe, expect, it } from "vitest"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { freePort, root, spawn, stop, waitFor } from "../runtime/testing/process.ts"

const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-deno-"))
afterAll(() => NodeFs.rmSync(dataDir, { recursive: true, force: true }))

const denoExecutable = NodePath.join(root, "node_modules", "deno", process.platform === "win32" ? "deno.exe" : "deno")

describe("Deno", () => {
  it("`deno task start` runs bin/main.ts start", () => {
    const config = JSON.parse(NodeFs.readFileSync(NodePath.join(root, "deno.json"), "utf8")) as { tasks: Record<string, string> }
    expect(config.tasks.start).toMatch(/ run( --v8-flags=\S+)? --allow-all bin\/main\.ts start$/)
  })

  it("serves /health on the embedded default and stops on SIGTERM", async () => {
    expect(NodeFs.existsSync(denoExecutable)).toBe(true)
    const port = await freePort()
    const adminPort = await freePort()
    const proc = spawn(denoExecutable, ["run", "--allow-all", "bin/main.ts", "start"], {
      TROUPE_DATA_DIR: dataDir,
      TROUPE_PORT: String(port),
      TROUPE_ADMIN_PORT: String(adminPort),
      TROUPE_HOST: "127.0.0.1",
      NO_COLOR: "1"
    })
    try {
      const response = await waitFor(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 120_000 })
      expect(await response.json()).toEqual({ status: "healthy" })
      const detailed = await (await fetch(`http://127.0.0.1:${adminPort}/health/detailed`)).json() as { checks: Record<string, { status: string }> }
      expect(detailed.checks.database?.status).toBe("healthy")
      expect(detailed.checks.cluster?.status).toBe("healthy")
    } finally {
      expect(await stop(proc, "SIGTERM")).toBe(0)
    }
  }, 180_000)
})
