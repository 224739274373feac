/**
 * Schema migrations with the `@effect/sql` migrator. Each feature folder exports its own list of
 * migrations; the process entry point gathers them and runs them once, in id order. Ids are
 * dates with a counter (`YYYYMMDDNN`), so folders written apart never collide and always sort
 * in the order they were written.
 */
import * as Migrator from "@effect/sql/Migrator"
import type * as SqlClient from "@effect/sql/SqlClient"
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
  const migrate = Migrator.make({})({
    table,
    loader: Effect.succeed(sorted.map((m) => [m.id, m.name, Effect.succeed(m.run)] as const))
  })
  return Database.withStartupLock(migrate).pipe(
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
