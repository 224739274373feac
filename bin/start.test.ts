import { afterAll, afterEach, describe, expect, it } from "vitest"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { freePort, type Spawned, spawnTroupe, stop, waitFor } from "../runtime/testing/process.ts"

const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-start-"))
afterAll(() => NodeFs.rmSync(dataDir, { recursive: true, force: true }))
const started: Array<Spawned> = []
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => stop(p, "SIGKILL")))
})
const startTroupe = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const proc = spawnTroupe(args, env)
  started.push(proc)
  return proc
}

describe("troupe start (embedded default)", () => {
  it("serves health and metrics, logs JSON, keeps its data across a restart and stops cleanly on SIGTERM", async () => {
    const port = await freePort()
    const adminPort = await freePort()
    const env = { TROUPE_DATA_DIR: dataDir, TROUPE_PORT: String(port), TROUPE_HOST: "127.0.0.1", TROUPE_ADMIN_PORT: String(adminPort) }

    const first = startTroupe(["start"], env)
    await waitFor(`http://127.0.0.1:${port}/health`, { proc: first })
    expect(await (await fetch(`http://127.0.0.1:${port}/health`)).json()).toEqual({ status: "healthy" })

    // operational detail is on the admin listener only
    expect((await fetch(`http://127.0.0.1:${port}/health/detailed`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404)
    const detailed = await (await fetch(`http://127.0.0.1:${adminPort}/health/detailed`)).json() as {
      checks: Record<string, { status: string; details?: Record<string, unknown> }>
    }
    expect(Object.keys(detailed.checks)).toEqual(expect.arrayContaining(["blob_store", "cache", "cluster", "database"]))
    expect(Object.values(detailed.checks).every((c) => c.status === "healthy")).toBe(true)
    expect(detailed.checks.database!.details).toEqual({ kind: "embedded" })

    const notFound = await fetch(`http://127.0.0.1:${port}/v1/no/such/route`)
    expect(notFound.status).toBe(404)
    expect(await notFound.json()).toEqual({ error: { code: "not_found", message: "No such route" } })
    expect(notFound.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)

    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
    // labelled by the route that took it (the API's catch-all), never by the path asked for
    expect(metrics).toMatch(/^troupe_http_requests_total\{.*route="\/v1\/\*".*status="404".*\} \d+$/m)
    expect(metrics).not.toContain("/v1/no/such")
    expect(metrics).toMatch(/^troupe_entity_messages_total\{entity="Probe",tag="Ping"\} \d+$/m)
    expect(metrics).toMatch(/^troupe_db_pool_connections\{kind="embedded"\} 1$/m)
    expect(metrics).toMatch(/^process_resident_memory_bytes \d+$/m)
    expect(metrics).toMatch(/^troupe_background_tasks_queued \d+$/m)
    expect(metrics).toMatch(/^troupe_background_busy_seconds_total [\d.e-]+$/m)
    expect(metrics).toContain("# TYPE troupe_http_request_duration_seconds histogram")

    const logs = first.logs()
    const ready = logs.find((l) => typeof l.message === "string" && l.message.startsWith(`Troupe is ready at http://localhost:${port}`))
    expect(ready).toMatchObject({ level: "info", service: "start" })
    expect(typeof ready!.timestamp).toBe("string")
    const access = logs.find((l) => l.message === "http" && (l.context as Record<string, unknown>).path === "/v1/no/such/route")
    expect(access).toMatchObject({ context: { status: 404, method: "GET" } })
    expect(access!.trace_id).toMatch(/^[0-9a-f]{32}$/)
    expect(logs.some((l) => typeof l.message === "string" && /^Applied \d+ migration\(s\)$/.test(l.message))).toBe(true)

    expect(await stop(first, "SIGTERM")).toBe(0)

    const second = startTroupe(["start"], env)
    await waitFor(`http://127.0.0.1:${port}/health`, { proc: second })
    // the schema (and everything in it) was still there: nothing to migrate the second time
    expect(second.logs().some((l) => typeof l.message === "string" && l.message.startsWith("Applied"))).toBe(false)
    expect(await stop(second, "SIGINT")).toBe(0)
  }, 120_000)

  it("refuses bad configuration with one line naming the variable", async () => {
    const proc = spawnTroupe(["start"], { TROUPE_DATA_DIR: dataDir, TROUPE_PORT: "eighty" })
    expect(await proc.exited).toBe(1)
    expect(proc.stderr().trim()).toBe("troupe: invalid configuration: TROUPE_PORT: expected an integer value but received \"eighty\"")
  })

  it("explains every role in --help", async () => {
    const proc = spawnTroupe(["--help"], {})
    expect(await proc.exited).toBe(0)
    for (const role of ["start", "runner", "gateway", "migrate"]) expect(proc.stdout()).toMatch(new RegExp(`- ${role}\\b`))
  })
})
