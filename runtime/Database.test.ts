import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Database from "./Database.ts"
import * as Migrations from "./Migrations.ts"
import { freePort } from "./testing/process.ts"
import { createTestDatabase } from "./testing/services.ts"

const tmp = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-db-"))
let pg: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  pg = await createTestDatabase("db")
})
afterAll(async () => {
  await pg.drop()
  NodeFs.rmSync(tmp, { recursive: true, force: true })
})

const migrations: ReadonlyArray<Migrations.Migration> = [
  {
    id: 2026010101,
    name: "accounts",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL);
          CREATE TABLE journal (n SERIAL PRIMARY KEY, note TEXT NOT NULL)`)
  },
  {
    id: 2026010102,
    name: "seed",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO accounts VALUES ('a', 0)`)
  }
]

const backends: ReadonlyArray<readonly [string, () => Layer.Layer<SqlClient.SqlClient | Database.DatabaseInfo, unknown>]> = [
  ["embedded PGlite", () => Database.layerEmbedded(NodePath.join(tmp, "pglite"))],
  ["Postgres", () => Database.layerPostgres({ url: Redacted.make(pg.url), maxConnections: 8 })]
]

for (const [name, layer] of backends) {
  describe(name, () => {
    it.live("applies migrations once, even when several processes start together", () =>
      Effect.gen(function*() {
        const results = yield* Effect.all([Migrations.run(migrations), Migrations.run(migrations), Migrations.run(migrations)], { concurrency: 3 })
        expect(results.map((r) => r.length).sort()).toEqual([0, 0, 2])
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql`SELECT id, balance FROM accounts`).toEqual([{ id: "a", balance: "0" }])
        expect(yield* Migrations.run(migrations)).toEqual([])
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })

    it.live("runs a migration that landed after a newer one was applied, once", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const later: Migrations.Migration = { id: 2026010110, name: "later", run: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO journal (note) VALUES ('later')`) }
        const older: Migrations.Migration = { id: 2026010105, name: "older", run: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO journal (note) VALUES ('older')`) }
        yield* Migrations.run([...migrations, later])
        // a build that has a migration with a lower id than the newest applied one
        expect(yield* Migrations.run([...migrations, older, later])).toEqual([[2026010105, "older"]])
        expect(yield* Migrations.run([...migrations, older, later])).toEqual([])
        const notes = yield* sql<{ note: string }>`SELECT note FROM journal WHERE note IN ('later', 'older') ORDER BY n`
        expect(notes.map((r) => r.note)).toEqual(["later", "older"])
        yield* sql`DELETE FROM journal WHERE note IN ('later', 'older')` // the next tests read the journal
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })

    it.live("keeps concurrent transactions serializable and isolated", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const increment = sql.withTransaction(
          Effect.gen(function*() {
            const [row] = yield* sql<{ balance: string }>`SELECT balance FROM accounts WHERE id = 'a' FOR UPDATE`
            yield* sql`UPDATE accounts SET balance = ${Number(row!.balance) + 1} WHERE id = 'a'`
          })
        )
        yield* Effect.all(Array.from({ length: 40 }, () => increment), { concurrency: 10 })
        const [after] = yield* sql<{ balance: string }>`SELECT balance FROM accounts WHERE id = 'a'`
        expect(after!.balance).toBe("40")
      }).pipe(Effect.provide(layer())))

    it.live("rolls back a failed transaction and leaves other statements untouched", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const failing = sql.withTransaction(
          Effect.gen(function*() {
            yield* sql`INSERT INTO journal (note) VALUES ('inside')`
            yield* Effect.sleep("20 millis")
            return yield* Effect.fail("boom" as const)
          })
        )
        const outside = Effect.zipRight(Effect.sleep("5 millis"), sql`INSERT INTO journal (note) VALUES ('outside')`)
        const [failed] = yield* Effect.all([Effect.flip(failing), outside], { concurrency: 2 })
        expect(failed).toBe("boom")
        const notes = yield* sql<{ note: string }>`SELECT note FROM journal ORDER BY n`
        expect(notes.map((r) => r.note)).toEqual(["outside"])
      }).pipe(Effect.provide(layer())))

    it.live("reports a failing statement as an SqlError without breaking the connection", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(sql`SELECT * FROM no_such_table`)
        expect(error._tag).toBe("SqlError")
        expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
      }).pipe(Effect.provide(layer())))
  })
}

describe("embedded PGlite", () => {
  it.live("keeps its data across restarts", () =>
    Effect.gen(function*() {
      const dir = NodePath.join(tmp, "restart")
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('still here')`).pipe(
        Effect.provide(Database.layerEmbedded(dir))
      )
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT v FROM kept`).pipe(
        Effect.provide(Database.layerEmbedded(dir))
      )
      expect(rows).toEqual([{ v: "still here" }])
    }), { timeout: 60_000 })
})

describe("Postgres not up yet", () => {
  it.live("a process waits for a database that starts after it, and still refuses a wrong one at once", () =>
    Effect.gen(function*() {
      // a TCP front for the test database that begins to listen 1.5 s after the process asked
      const port = yield* Effect.promise(() => freePort())
      const target = new URL(pg.url)
      const front = NodeNet.createServer((socket) => {
        const upstream = NodeNet.connect(Number(target.port || 5432), target.hostname)
        socket.pipe(upstream).pipe(socket)
        socket.on("error", () => upstream.destroy())
        upstream.on("error", () => socket.destroy())
      })
      const opened = setTimeout(() => front.listen(port, "127.0.0.1"), 1_500)
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        clearTimeout(opened)
        front.close()
      }))
      const url = new URL(pg.url)
      url.host = `127.0.0.1:${port}`
      const started = Date.now()
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`).pipe(
        Effect.provide(Database.layerPostgres({ url: Redacted.make(url.toString()), maxConnections: 2 }))
      )
      expect(rows).toEqual([{ one: 1 }])
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_400)

      // a database that does not exist is a refusal, not a wait
      const missing = new URL(pg.url)
      missing.pathname = "/no_such_database_here"
      const before = Date.now()
      const exit = yield* Effect.exit(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
        Effect.provide(Database.layerPostgres({ url: Redacted.make(missing.toString()), maxConnections: 2 }))
      ))
      expect(exit._tag).toBe("Failure")
      expect(Date.now() - before).toBeLessThan(20_000) // a wait would last 90 s
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
