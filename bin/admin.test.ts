/**
 * `troupe admin shards` and `troupe admin drain` against two real runners on Postgres: the
 * snapshot shows both runners healthy with every shard held; a drained runner hands all its
 * shards to the other and stays up; undone, it takes shards again. Refusals name the problem.
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as ClusterAdmin from "../runtime/ClusterAdmin.ts"
import type { Snapshot } from "../runtime/ClusterAdmin.ts"
import * as Database from "../runtime/Database.ts"
import { randomMasterKey, type RunnerProcess, startRunner } from "../runtime/testing/cluster.ts"
import { spawnTroupe, stop } from "../runtime/testing/process.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-admin-"))
const masterKey = randomMasterKey()
const runners: Array<RunnerProcess> = []

beforeAll(async () => {
  db = await createTestDatabase("admin")
  runners.push(...await Promise.all([0, 1].map(() => startRunner({ databaseUrl: db.url, masterKey, dataDir }))))
}, 300_000)
afterAll(async () => {
  await Promise.all(runners.map((r) => stop(r.proc, "SIGKILL")))
  await db?.drop()
  NodeFs.rmSync(dataDir, { recursive: true, force: true })
})

const admin = async (...args: Array<string>) => {
  const proc = spawnTroupe(["admin", ...args], { DATABASE_URL: db.url, TROUPE_DATA_DIR: dataDir, TROUPE_LOG_LEVEL: "error" })
  const code = await proc.exited
  return { code, stdout: proc.stdout(), stderr: proc.stderr() }
}
/** The snapshot `troupe admin shards --json` prints, read in this process (one spawn per poll is slow). */
const shards = (): Promise<Snapshot> =>
  Effect.runPromise(ClusterAdmin.snapshot(300).pipe(Effect.provide(Database.layerPostgres({ url: Redacted.make(db.url), maxConnections: 1 }))))
const until = async (what: string, check: (s: Snapshot) => boolean, timeoutMs = 90_000) => {
  const deadline = Date.now() + timeoutMs
  let last: Snapshot | undefined
  while (Date.now() < deadline) {
    last = await shards()
    if (check(last)) return last
    await new Promise((r) => setTimeout(r, 1000))
  }
  throw new Error(`${what}: not after ${timeoutMs} ms: ${JSON.stringify(last)}`)
}
const held = (s: Snapshot, address: string) => s.runners.find((r) => r.address === address)?.shards.default ?? 0

describe("troupe admin", () => {
  it("shows who owns the shards, drains a runner and undoes it", async () => {
    const [a, b] = runners as [RunnerProcess, RunnerProcess]
    const before = await until("both runners report their shards", (s) =>
      s.runners.filter((r) => r.healthy && r.statsAgeMs !== null).length === 2 && held(s, a.name) + held(s, b.name) === s.shardsPerGroup)
    expect(before.runners.map((r) => r.address).sort()).toEqual([a.name, b.name].sort())
    expect(held(before, a.name)).toBeGreaterThan(0)
    expect(before.runners.every((r) => r.heartbeatAgeMs !== null && r.heartbeatAgeMs < 10_000)).toBe(true)
    const table = await admin("shards")
    expect(table.code, table.stderr).toBe(0)
    const json = JSON.parse((await admin("shards", "--json")).stdout) as Snapshot
    expect(json.runners.map((r) => r.address).sort()).toEqual([a.name, b.name].sort())
    expect(table.stdout).toMatch(new RegExp(`${a.name.replace(/\./g, "\\.")}\\s+healthy`))

    const drained = await admin("drain", a.name)
    expect(drained.code, drained.stderr).toBe(0)
    const after = await until("the drained runner's shards moved", (s) => held(s, a.name) === 0 && held(s, b.name) === s.shardsPerGroup)
    expect(after.runners.find((r) => r.address === a.name)).toMatchObject({ drained: true, healthy: false })
    // it stays up, and the cluster still answers through the other runner
    expect((await fetch(`http://127.0.0.1:${a.httpPort}/health`)).status).toBe(200)
    // the last runner standing cannot be drained; an unknown one is named
    const last = await admin("drain", b.name)
    expect(last.code).toBe(1)
    expect(last.stderr).toMatch(/only runner not drained/)
    const unknown = await admin("drain", "10.9.9.9:1")
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/no runner 10\.9\.9\.9:1 in the cluster/)

    expect((await admin("drain", "--undo", a.name)).code).toBe(0)
    await until("the undrained runner takes shards again", (s) => held(s, a.name) > 0 && held(s, a.name) + held(s, b.name) === s.shardsPerGroup)
  }, 600_000)
})
