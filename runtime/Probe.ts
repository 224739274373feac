/**
 * The probe: a trivial entity every runner hosts. The `cluster` health check pings it (a
 * volatile round trip through the sharding layer), and operators and tests use `Record`
 * (a persisted, de-duplicated command) to prove that messages survive a runner's death.
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import type * as Sharding from "@effect/cluster/Sharding"
import * as Rpc from "@effect/rpc/Rpc"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Schema from "effect/Schema"
import type { Migration } from "./Migrations.ts"
import { instrument } from "./EntityMetrics.ts"

/** A persisted command de-duplicated by `messageId`. */
export class RecordMessage extends Schema.Class<RecordMessage>("troupe/Probe/Record")({
  messageId: Schema.String.pipe(Schema.maxLength(200))
}) {
  [PrimaryKey.symbol]() {
    return this.messageId
  }
}

/** Who answered. */
export const Answer = Schema.Struct({ entityId: Schema.String, runner: Schema.String })

/** The probe entity. */
export const Probe = Entity.make("Probe", [
  Rpc.make("Ping", { success: Answer }),
  Rpc.make("Record", { payload: RecordMessage, success: Answer }).annotate(ClusterSchema.Persisted, true)
])

/** The probe's table: one row per recorded message, whoever processed it and how often. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026112101,
    name: "probe_log",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`CREATE TABLE IF NOT EXISTS troupe_probe_log (
        entity_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        runner TEXT NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 1,
        recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (entity_id, message_id)
      )`)
  }
]

/** Host the probe; `runner` names this process in answers. */
export const layer = (runner: string): Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient> =>
  Probe.toLayer(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const address = yield* Entity.CurrentAddress
      return instrument("Probe", {
        Ping: () => Effect.succeed({ entityId: address.entityId, runner }),
        Record: ({ payload }) =>
          sql`INSERT INTO troupe_probe_log (entity_id, message_id, runner)
              VALUES (${address.entityId}, ${payload.messageId}, ${runner})
              ON CONFLICT (entity_id, message_id) DO UPDATE SET deliveries = troupe_probe_log.deliveries + 1`.pipe(
            Effect.as({ entityId: address.entityId, runner }),
            Effect.orDie
          )
      })
    }),
    { maxIdleTime: "1 minute", concurrency: 16 }
  )

/** A volatile round trip to the probe entity `id`. */
export const ping = (id: string) => Effect.flatMap(Probe.client, (client) => client(id).Ping())
