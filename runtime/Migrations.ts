/**
 * Schema migrations with the `@effect/sql` migrator. Each feature folder exports its own list of
 * migrations; the process entry point gathers them and runs them once, in id order. Ids are
 * dates with a counter (`YYYYMMDDNN`), so folders written apart never collide and always sort
 * in the order they were written.
 *
 * The migrator alone runs only ids above the newest applied one. Work written apart lands in any
 * order, so a database that ran a build with a newer id would never get an older one landed after
 * it: `catchUp` first runs every migration below the newest applied id that is not applied yet.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Database from "./Database.ts"

/** One migration. `run` must be safe to re-run on an empty or partial schema only once. */
export interface Migration {
  readonly id: number
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown, SqlClient.SqlClient>
}

/** The migrations table shared by all of Troupe's folders. */
export const table = "troupe_migrations"

/** Run the migrations not yet applied; returns the ones applied now. Safe with many processes. */
export const run = (
  migrations: ReadonlyArray<Migration>
): Effect.Effect<ReadonlyArray<readonly [number, string]>, Migrator.MigrationError | SqlError, SqlClient.SqlClient> => {
  const ids = new Set<number>()
  for (const m of migrations) {
    if (ids.has(m.id)) {
      return Effect.fail(new Migrator.MigrationError({ reason: "duplicates", message: `Duplicate migration id ${m.id} (${m.name})` }))
    }
    ids.add(m.id)
  }
  const sorted = [...migrations].sort((a, b) => a.id - b.id)
  const catchUp = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // a new database has no table yet: the migrator creates it and runs everything
    const rows = yield* sql<{ migration_id: number }>`SELECT migration_id FROM ${sql(table)}`.pipe(
      Effect.catchTag("SqlError", () => Effect.succeed([]))
    )
    if (rows.length === 0) return []
    const applied = new Set(rows.map((r) => Number(r.migration_id)))
    const newest = Math.max(...applied)
    const missed = sorted.filter((m) => m.id < newest && !applied.has(m.id))
    return yield* Effect.forEach(missed, (m) =>
      sql.withTransaction(
        Effect.zipRight(
          Effect.orDieWith(m.run, (cause) => new Migrator.MigrationError({ cause, reason: "failed", message: `Migration "${m.id}_${m.name}" failed` })),
          sql`INSERT INTO ${sql(table)} ${sql.insert({ migration_id: m.id, name: m.name })}`
        )
      ).pipe(Effect.as([m.id, m.name] as const)))
  })
  const migrate = Migrator.make({})({
    table,
    loader: Effect.succeed(sorted.map((m) => [m.id, m.name, Effect.succeed(m.run)] as const))
  })
  return Database.withStartupLock(Effect.zipWith(catchUp, migrate, (early, late) => [...early, ...late])).pipe(
    // a server that refuses a statement for a moment (a restart): try again
    Effect.retry({ times: 3, schedule: Schedule.spaced("200 millis"), while: (e) => e._tag === "SqlError" }),
    Effect.tap((applied) =>
      applied.length > 0
        ? Effect.logInfo(`Applied ${applied.length} migration(s)`).pipe(
          Effect.annotateLogs("migrations", applied.map(([id, name]) => `${id}_${name}`).join(", "))
        )
        : Effect.void
    )
  )
}
