/**
 * An `SqlClient` over an in-process PGlite database: the embedded default used by `troupe start`
 * when no `DATABASE_URL` is set. PGlite is a single Postgres session, so the adapter serialises
 * access: a plain statement holds the session for its own duration; a transaction (`BEGIN` …
 * `COMMIT`/`ROLLBACK` on a reserved connection) holds it until it ends. A reserved connection
 * that is not inside a transaction does not hold the session, so the cluster's long-lived lock
 * connection does not starve everything else.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import { PGlite, types as pgTypes } from "@electric-sql/pglite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Chunk from "effect/Chunk"
import * as NodeChild from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"

/** Options for the embedded database. */
export interface PgliteClientOptions {
  /** Folder holding the database files; `undefined` keeps everything in memory. */
  readonly dataDir: string | undefined
}

/** The PGlite instance behind the client, for health checks and tools. */
export class Pglite extends Context.Tag("troupe/runtime/PgliteClient/Pglite")<Pglite, PGlite>() {}

/**
 * Parse 64-bit integers and numerics as strings, as the `pg` driver does, so both backends agree.
 * Given once to `PGlite.create`, not per query: PGlite copies its whole parser table into a new
 * object for every query that brings its own (~100 KB of garbage per query; the cluster's polls
 * alone ran five a second on an idle server).
 */
const parsers = {
  [pgTypes.INT8]: (value: string) => value,
  [pgTypes.NUMERIC]: (value: string) => value
}

/**
 * Postgres settings for the embedded database: 8 MB of shared buffers instead of Postgres' 128 MB.
 * PGlite's buffers live in its WebAssembly memory, which never shrinks, and a self-hosted instance's
 * working set is small (the files stay in the OS page cache); 16 MB took ~120 MB off the idle RSS
 * of `troupe start`, 8 MB 8 MB more, with point lookups and scans of a 20 MB table within noise
 * (bench/RESULTS.md, "Idle footprint").
 */
const startParams = [...PGlite.defaultStartParams, "-c", "shared_buffers=8MB"]

/** A FIFO mutex over the single PGlite session. */
const makeSessionLock = () => {
  let held = false
  const waiters: Array<() => void> = []
  const acquire = Effect.async<void>((resume) => {
    if (!held) {
      held = true
      resume(Effect.void)
      return
    }
    let granted = false
    const waiter = () => {
      granted = true
      resume(Effect.void)
    }
    waiters.push(waiter)
    return Effect.sync(() => {
      const index = waiters.indexOf(waiter)
      if (index >= 0) waiters.splice(index, 1)
      else if (granted) release()
    })
  })
  const release = () => {
    const next = waiters.shift()
    if (next) next()
    else held = false
  }
  return { acquire, release: Effect.sync(release) }
}

const toSqlError = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })

const beginRe = /^\s*(BEGIN|START\s+TRANSACTION)\b/i
const endRe = /^\s*(COMMIT|ROLLBACK|END)\s*;?\s*$/i

/** Build a client over an opened PGlite instance. */
export const fromPglite = (db: PGlite): Effect.Effect<Client.SqlClient, never, Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const lock = makeSessionLock()
    const compiler = PgClient.makeCompiler()

    const run = (sql: string, params: ReadonlyArray<unknown>, rowMode: "object" | "array") =>
      Effect.tryPromise({
        try: () =>
          params.length === 0 && rowMode === "object"
            ? db.exec(sql).then((results) =>
              results.length <= 1 ? (results[0]?.rows ?? []) : results.map((r) => r.rows)
            )
            : db.query(sql, params as Array<unknown>, { rowMode }).then((r) => r.rows),
        catch: toSqlError
      }) as Effect.Effect<ReadonlyArray<any>, SqlError>

    class PgliteConnection implements Connection {
      /** Whether this connection holds the session because a transaction is open on it. */
      private inTransaction = false
      constructor(private readonly reserved: boolean) {}

      private withSession<A>(sql: string, effect: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> {
        if (this.reserved && beginRe.test(sql) && !this.inTransaction) {
          return Effect.uninterruptibleMask((restore) =>
            Effect.zipRight(
              restore(lock.acquire),
              Effect.onExit(effect, (exit) => {
                if (exit._tag === "Success") {
                  this.inTransaction = true
                  return Effect.void
                }
                return lock.release
              })
            )
          )
        }
        if (this.inTransaction) {
          if (endRe.test(sql)) {
            return Effect.ensuring(
              effect,
              Effect.suspend(() => {
                this.inTransaction = false
                return lock.release
              })
            )
          }
          return effect
        }
        return Effect.acquireUseRelease(lock.acquire, () => effect, () => lock.release)
      }

      /** Release the session if the scope owning this connection closes mid-transaction. */
      readonly close = Effect.suspend(() => {
        if (!this.inTransaction) return Effect.void
        this.inTransaction = false
        return Effect.zipRight(
          Effect.ignore(Effect.tryPromise(() => db.exec("ROLLBACK"))),
          lock.release
        )
      })

      execute(
        sql: string,
        params: ReadonlyArray<unknown>,
        transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
      ) {
        const rows = this.withSession(sql, run(sql, params, "object"))
        return transformRows ? Effect.map(rows, transformRows) : rows
      }
      executeRaw(sql: string, params: ReadonlyArray<unknown>) {
        return this.withSession(
          sql,
          Effect.tryPromise({
            try: (): Promise<unknown> =>
              params.length === 0
                ? db.exec(sql)
                : db.query(sql, params as Array<unknown>),
            catch: toSqlError
          })
        )
      }
      executeWithoutTransform(sql: string, params: ReadonlyArray<unknown>) {
        return this.withSession(sql, run(sql, params, "object"))
      }
      executeValues(sql: string, params: ReadonlyArray<unknown>) {
        return this.withSession(sql, run(sql, params, "array"))
      }
      executeUnprepared(
        sql: string,
        params: ReadonlyArray<unknown>,
        transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
      ) {
        return this.execute(sql, params, transformRows)
      }
      executeStream(
        sql: string,
        params: ReadonlyArray<unknown>,
        transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
      ) {
        return Stream.fromIterableEffect(this.execute(sql, params, transformRows)).pipe(
          Stream.rechunk(128),
          Stream.mapChunks((chunk) => Chunk.map(chunk, (row) => row))
        )
      }
    }

    const reserve = Effect.acquireRelease(
      Effect.sync(() => new PgliteConnection(true)),
      (conn) => conn.close
    )

    return yield* Client.make({
      acquirer: Effect.succeed(new PgliteConnection(false)),
      transactionAcquirer: reserve,
      compiler,
      spanAttributes: [["db.system.name", "postgresql"], ["db.namespace", "pglite"]]
    })
  })

const repoRoot = NodePath.resolve(NodePath.dirname(NodeUrl.fileURLToPath(import.meta.url)), "..")

/**
 * The initialised empty database `npm install` prepares (bin/pglite-template.mjs), if present:
 * copying it is ~5 s faster than running initdb on the first start.
 */
export const templatePath = (): string | undefined => {
  try {
    const pkg = JSON.parse(NodeFs.readFileSync(NodePath.join(repoRoot, "node_modules", "@electric-sql", "pglite", "package.json"), "utf8")) as { version: string }
    const path = NodePath.join(repoRoot, "node_modules", ".cache", "troupe", `pglite-${pkg.version}.tar.gz`)
    return NodeFs.existsSync(path) ? path : undefined
  } catch {
    return undefined
  }
}

/**
 * Initialise a fresh data dir in a short-lived child process (Node): initdb, or unpacking the
 * template, leaves ~45 MB of freed memory that glibc's allocator keeps, so the server opening the
 * initialised dir afterwards idles that much lighter (bench/RESULTS.md, "Idle footprint"). Resolves
 * `false` when no child could be started (the caller initialises in this process).
 */
const initInChild = (dataDir: string, template: string | undefined): Promise<boolean> =>
  new Promise((resolve, reject) => {
    const script = NodeUrl.fileURLToPath(new URL("./pglite-init.mjs", import.meta.url))
    let stderr = ""
    const child = NodeChild.spawn(process.execPath, [script, dataDir, template ?? "", JSON.stringify(startParams)], {
      cwd: repoRoot,
      stdio: ["ignore", "ignore", "pipe"]
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000)
    })
    child.once("error", () => resolve(false))
    child.once("exit", (code, signal) => {
      if (code === 0) resolve(true)
      else reject(new Error(`initialising the embedded database in ${dataDir} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`))
    })
  })

const isNode = !("Deno" in globalThis) && NodePath.basename(process.execPath).startsWith("node")

const open = async (dataDir: string | undefined): Promise<PGlite> => {
  const fresh = dataDir !== undefined && !NodeFs.existsSync(NodePath.join(dataDir, "PG_VERSION"))
  const template = fresh ? templatePath() : undefined
  if (fresh && isNode && await initInChild(dataDir, template)) {
    return PGlite.create(dataDir, { parsers, startParams })
  }
  if (template) {
    return PGlite.create(dataDir, { parsers, startParams, loadDataDir: new Blob([NodeFs.readFileSync(template)]) })
  }
  return PGlite.create(dataDir, { parsers, startParams })
}

/** Open (creating if needed) the embedded database and provide it as the `SqlClient`. */
export const layer = (
  options: PgliteClientOptions
): Layer.Layer<Client.SqlClient | Pglite, SqlError> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const db = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => open(options.dataDir),
          catch: (cause) => new SqlError({ cause, message: `Failed to open the embedded database in ${options.dataDir ?? "memory"}` })
        }),
        (db) => Effect.promise(() => db.close()).pipe(Effect.timeoutOption("5 seconds"))
      )
      const client = yield* fromPglite(db)
      return Context.make(Pglite, db).pipe(Context.add(Client.SqlClient, client))
    })
  ).pipe(Layer.provide(Reactivity.layer))
