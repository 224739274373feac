/**
 * The key-value store behind the `kv_get`/`kv_set` host functions: each plugin sees only the
 * entries of its app install and the calling user, with caps on key, value and total size.
 * `layerSql` keeps them in the runtime's database (Postgres or embedded PGlite); `layerMemory`
 * is for tests and the CLI.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { Buffer } from "node:buffer"
import type { Migration } from "../../runtime/Migrations.ts"

/** Whose entries: one app install, one user. */
export interface KvScope {
  readonly app: string
  readonly installId: string
  readonly userId: string
}

/** Size caps, in bytes. */
export interface KvLimits {
  readonly maxKeyBytes: number
  readonly maxValueBytes: number
  /** Keys plus values of one scope. */
  readonly maxTotalBytes: number
}

/** Default caps: 256 B keys, 64 KiB values, 1 MiB per install and user. */
export const defaultLimits: KvLimits = { maxKeyBytes: 256, maxValueBytes: 64 * 1024, maxTotalBytes: 1024 * 1024 }

/** A refused or failed KV operation. */
export class KvError extends Schema.TaggedError<KvError>()("KvError", {
  reason: Schema.Literal("key_too_large", "value_too_large", "quota_exceeded", "unavailable"),
  message: Schema.String
}) {}

/** The store. */
export class KvStore extends Context.Tag("troupe/skills/host/KvStore")<KvStore, {
  readonly limits: KvLimits
  readonly get: (scope: KvScope, key: string) => Effect.Effect<Uint8Array | undefined, KvError>
  /** Set a value; `undefined` deletes the key. */
  readonly set: (scope: KvScope, key: string, value: Uint8Array | undefined) => Effect.Effect<void, KvError>
}>() {}

const encoder = new TextEncoder()

const checkSizes = (limits: KvLimits, key: string, value: Uint8Array | undefined): KvError | undefined => {
  const keyBytes = encoder.encode(key).byteLength
  if (keyBytes === 0 || keyBytes > limits.maxKeyBytes) {
    return new KvError({ reason: "key_too_large", message: `keys must be 1 to ${limits.maxKeyBytes} bytes (got ${keyBytes})` })
  }
  if (value && value.byteLength > limits.maxValueBytes) {
    return new KvError({ reason: "value_too_large", message: `values are at most ${limits.maxValueBytes} bytes (got ${value.byteLength})` })
  }
  return undefined
}

const quota = (limits: KvLimits) =>
  new KvError({ reason: "quota_exceeded", message: `the store of this install and user is full (${limits.maxTotalBytes} bytes)` })

/** Entries in memory. */
export const layerMemory = (limits: KvLimits = defaultLimits): Layer.Layer<KvStore> =>
  Layer.sync(KvStore, () => {
    const scopes = new Map<string, Map<string, Uint8Array>>()
    const scopeKey = (s: KvScope) => JSON.stringify([s.app, s.installId, s.userId])
    return {
      limits,
      get: (scope, key) => Effect.sync(() => scopes.get(scopeKey(scope))?.get(key)),
      set: (scope, key, value) =>
        Effect.suspend(() => {
          const refused = checkSizes(limits, key, value)
          if (refused) return Effect.fail(refused)
          const id = scopeKey(scope)
          const entries = scopes.get(id) ?? new Map<string, Uint8Array>()
          if (value === undefined) {
            entries.delete(key)
            return Effect.void
          }
          let total = encoder.encode(key).byteLength + value.byteLength
          for (const [k, v] of entries) if (k !== key) total += encoder.encode(k).byteLength + v.byteLength
          if (total > limits.maxTotalBytes) return Effect.fail(quota(limits))
          entries.set(key, value.slice())
          scopes.set(id, entries)
          return Effect.void
        })
    }
  })

/** The table. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026112171,
    name: "skill_kv",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`CREATE TABLE IF NOT EXISTS troupe_skill_kv (
        app TEXT NOT NULL,
        install_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value BYTEA NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (app, install_id, user_id, key)
      )`)
  }
]

const unavailable = (cause: unknown) =>
  new KvError({ reason: "unavailable", message: `the key-value store failed: ${cause instanceof Error ? cause.message : String(cause)}` })

/** Entries in the database (run `migrations` first). Values travel as base64 so both drivers agree. */
export const layerSql = (limits: KvLimits = defaultLimits): Layer.Layer<KvStore, never, SqlClient.SqlClient> =>
  Layer.effect(
    KvStore,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return {
        limits,
        get: (scope, key) =>
          sql<{ readonly value: string }>`SELECT encode(value, 'base64') AS value FROM troupe_skill_kv
            WHERE app = ${scope.app} AND install_id = ${scope.installId} AND user_id = ${scope.userId} AND key = ${key}`.pipe(
            Effect.map((rows) => rows[0] === undefined ? undefined : new Uint8Array(Buffer.from(rows[0].value.replace(/\s/g, ""), "base64"))),
            Effect.mapError(unavailable)
          ),
        set: (scope, key, value) =>
          Effect.suspend(() => {
            const refused = checkSizes(limits, key, value)
            if (refused) return Effect.fail(refused)
            if (value === undefined) {
              return sql`DELETE FROM troupe_skill_kv
                WHERE app = ${scope.app} AND install_id = ${scope.installId} AND user_id = ${scope.userId} AND key = ${key}`.pipe(
                Effect.asVoid,
                Effect.mapError(unavailable)
              )
            }
            const size = encoder.encode(key).byteLength + value.byteLength
            const encoded = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64")
            return sql<{ readonly ok: number }>`INSERT INTO troupe_skill_kv (app, install_id, user_id, key, value, updated_at)
              SELECT ${scope.app}, ${scope.installId}, ${scope.userId}, ${key}, decode(${encoded}, 'base64'), now()
              WHERE (
                SELECT coalesce(sum(octet_length(key) + octet_length(value)), 0) FROM troupe_skill_kv
                WHERE app = ${scope.app} AND install_id = ${scope.installId} AND user_id = ${scope.userId} AND key <> ${key}
              ) + ${size} <= ${limits.maxTotalBytes}
              ON CONFLICT (app, install_id, user_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
              RETURNING 1 AS ok`.pipe(
              Effect.mapError(unavailable),
              Effect.flatMap((rows) => rows.length === 0 ? Effect.fail(quota(limits)) : Effect.void)
            )
          })
      }
    })
  )
