/**
 * Scheduled backups (`TROUPE_BACKUP_SCHEDULE`): two `troupe runner` processes share one Postgres
 * database with a schedule of every second and `TROUPE_BACKUP_KEEP=2`. Backups appear in the
 * target, retention deletes the oldest, and the job is a cluster singleton: no backup is taken by
 * both runners. A bad schedule, or one on the embedded database, stops the role before it starts.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Cron from "effect/Cron"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Backup from "../runtime/Backup.ts"
import * as TroupeConfig from "../runtime/Config.ts"
import { randomMasterKey, type RunnerProcess, startRunner } from "../runtime/testing/cluster.ts"
import { spawnTroupe, stop } from "../runtime/testing/process.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
const runners: Array<RunnerProcess> = []
const tmp = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-backup-schedule-"))
const backupKey = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")

beforeAll(async () => {
  db = await createTestDatabase("backup_schedule")
}, 60_000)
afterAll(async () => {
  for (const r of runners) await stop(r.proc)
  await db?.drop()
  NodeFs.rmSync(tmp, { recursive: true, force: true })
})

/** The ids of the scheduled backups a runner logged, in order. */
const written = (r: RunnerProcess): Array<string> =>
  r.proc.logs().filter((l) => l.message === "Scheduled backup written").map((l) => String((l.context as Record<string, unknown>).backup_id))

const waitUntil = async (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 120_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${runners.map((r) => r.proc.stdout().split("\n").filter((l) => /backup/i.test(l)).slice(-5).join("\n")).join("\n---\n")}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

describe("scheduled backups", () => {
  it("take a backup every tick on one runner of the cluster, keeping the newest TROUPE_BACKUP_KEEP", async () => {
    const target = NodePath.join(tmp, "target")
    const masterKey = randomMasterKey()
    const env = {
      TROUPE_LOG_LEVEL: "info",
      TROUPE_BACKUP_SCHEDULE: "* * * * * *",
      TROUPE_BACKUP_TO: target,
      TROUPE_BACKUP_KEEP: "2",
      TROUPE_BACKUP_KEY: backupKey
    }
    const location = Backup.parseLocation(target)
    const blobs = { _tag: "Filesystem" as const, root: NodePath.join(tmp, "data", "blobs") }
    const stored = () => Effect.runPromise(Backup.list(location, blobs))
    const dataDir = NodePath.join(tmp, "data")
    runners.push(await startRunner({ databaseUrl: db.url, masterKey, dataDir, env }))
    await waitUntil("a first scheduled backup", () => written(runners[0]!).length >= 1)
    const first = written(runners[0]!)[0]!
    expect(first).toMatch(/^troupe-\d{8}T\d{6}Z$/)
    const manifest = JSON.parse(NodeFs.readFileSync(NodePath.join(target, first, "manifest.json"), "utf8")) as Backup.Manifest
    expect(manifest.database.kind).toBe("postgres")

    // a second runner on the same database: the job stays one
    runners.push(await startRunner({ databaseUrl: db.url, masterKey, dataDir, env }))
    const all = () => [...written(runners[0]!), ...written(runners[1]!)]
    const atJoin = all().length
    await waitUntil("five more scheduled backups", () => all().length >= atJoin + 5)
    const a = written(runners[0]!)
    const b = written(runners[1]!)
    // never the same tick on both runners (two runners taking it would log the same id)
    expect(a.filter((id) => b.includes(id)), `both runners took these: a=${a.join(",")} b=${b.join(",")}`).toEqual([])
    expect(new Set(all()).size).toBe(all().length)
    // retention: the newest two are kept, the oldest are gone
    await waitUntil("retention down to 2", async () => {
      const now = await stored()
      const newest = [...all()].sort().slice(-2)
      return now.length === 2 && now.every((id) => newest.includes(id))
    })
    expect(await stored()).not.toContain(first)
    expect(NodeFs.existsSync(NodePath.join(target, first))).toBe(false)
    // the pruned ones were logged as such
    const pruned = [...runners[0]!.proc.logs(), ...runners[1]!.proc.logs()]
      .filter((l) => l.message === "Scheduled backup written")
      .flatMap((l) => String((l.context as Record<string, unknown>).pruned).split(",").filter(Boolean))
    expect(pruned).toContain(first)
  }, 400_000)

  it("refuses a bad schedule, one without a target or key, and one on the embedded database, before the role starts", async () => {
    const read = (env: Record<string, string>) =>
      Effect.runPromise(Effect.flip(Effect.withConfigProvider(Backup.scheduleFromEnv, ConfigProvider.fromMap(new Map(Object.entries(env))))).pipe(
        Effect.map(TroupeConfig.formatError)
      ))
    expect(await read({ TROUPE_BACKUP_SCHEDULE: "every night", TROUPE_BACKUP_TO: tmp, TROUPE_BACKUP_KEY: backupKey })).toMatch(/^TROUPE_BACKUP_SCHEDULE: is not a cron expression/)
    expect(await read({ TROUPE_BACKUP_SCHEDULE: "0 3 * * *", TROUPE_BACKUP_KEY: backupKey })).toMatch(/^TROUPE_BACKUP_TO: is required with TROUPE_BACKUP_SCHEDULE/)
    expect(await read({ TROUPE_BACKUP_SCHEDULE: "0 3 * * *", TROUPE_BACKUP_TO: tmp, TROUPE_BACKUP_KEY: "c2hvcnQ=" })).toMatch(/^TROUPE_BACKUP_KEY: must be 32 bytes/)
    expect(await read({ TROUPE_BACKUP_SCHEDULE: "0 3 * * *", TROUPE_BACKUP_TO: tmp, TROUPE_BACKUP_KEY: backupKey, TROUPE_BACKUP_KEEP: "0" })).toMatch(/^TROUPE_BACKUP_KEEP: must be at least 1/)
    // blank means off; 6 fields take seconds first; times are UTC
    const off = await Effect.runPromise(Effect.withConfigProvider(Backup.scheduleFromEnv, ConfigProvider.fromMap(new Map([["TROUPE_BACKUP_SCHEDULE", " "], ["TROUPE_BACKUP_TO", ""]]))))
    expect(Option.isNone(off)).toBe(true)
    const nightly = await Effect.runPromise(Effect.withConfigProvider(Backup.scheduleFromEnv, ConfigProvider.fromMap(new Map([["TROUPE_BACKUP_SCHEDULE", "0 3 * * *"], ["TROUPE_BACKUP_TO", tmp], ["TROUPE_BACKUP_KEY", backupKey]]))))
    expect(Option.map(nightly, (s) => [Cron.next(s.cron, new Date("2026-12-07T14:00:00Z")).toISOString(), s.keep])).toEqual(Option.some(["2026-12-08T03:00:00.000Z", 7]))
    // the role checks it before starting anything: `troupe start` on the embedded database
    const proc = spawnTroupe(["start"], { TROUPE_DATA_DIR: NodePath.join(tmp, "refused"), TROUPE_BACKUP_SCHEDULE: "0 3 * * *", TROUPE_BACKUP_TO: tmp, TROUPE_BACKUP_KEY: backupKey })
    expect(await proc.exited).toBe(1)
    expect(proc.stderr(), proc.stdout()).toMatch(/invalid configuration: TROUPE_BACKUP_SCHEDULE: needs DATABASE_URL/)
    expect(NodeFs.existsSync(NodePath.join(tmp, "refused", "db"))).toBe(false)
  }, 120_000)
})
