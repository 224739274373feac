/**
 * The `troupe` command line: one binary, one subcommand per process role. Other folders add
 * their own commands (`preview`, `skill …`, `admin …`) through `makeCli`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Backup from "./Backup.ts"
import * as ClusterAdmin from "./ClusterAdmin.ts"
import * as TroupeConfig from "./Config.ts"
import * as Tracing from "./Tracing.ts"
import * as Database from "./Database.ts"
import * as KeyRing from "./KeyRing.ts"
import * as Memory from "./Memory.ts"
import * as Migrations from "./Migrations.ts"
import * as ReadyNotes from "./ReadyNotes.ts"
import * as Roles from "./Roles.ts"

/** Configuration was invalid; the message names the variable. */
export class StartupError extends Error {
  readonly _tag = "StartupError"
}

/** Read the configuration, turning a config error into one clear line. */
export const loadConfig = <A>(config: Effect.Effect<A, ConfigError.ConfigError>): Effect.Effect<A, StartupError> =>
  Effect.mapError(config, (e) => new StartupError(`invalid configuration: ${TroupeConfig.formatError(e)}`))

/** The app's own settings for `role`, checked before the role starts. */
const checkAppConfig = (app: Roles.App, role: "start" | "runner" | "gateway", config: TroupeConfig.TroupeConfigShape) =>
  Effect.zipRight(
    // hosting roles take the scheduled backups
    role === "gateway" ? Effect.void : Effect.asVoid(loadConfig(Backup.scheduleFor(config))),
    app.checkConfig ? Effect.asVoid(loadConfig(app.checkConfig(role, config))) : Effect.void
  )

/** Print a line for humans on stdout (the one place the CLI writes outside the logger). */
export const say = (line: string) => Effect.sync(() => void process.stdout.write(line + "\n"))

/**
 * Build and launch a role's layer, keep it running until interrupted (SIGINT/SIGTERM). `onReady`
 * gets the notes the parts added while starting (`ReadyNotes`), e.g. which LLM answers.
 */
const runRole = <A, E>(
  version: string,
  service: string,
  config: TroupeConfig.TroupeConfigShape,
  layer: Layer.Layer<A, E, never>,
  onReady: (notes: ReadonlyArray<string>) => Effect.Effect<void>
) =>
  Effect.scoped(
    Effect.flatMap(Layer.build(layer), (built) =>
      Effect.flatMap(
        Option.match(Context.getOption(built as Context.Context<unknown>, ReadyNotes.ReadyNotes), { onNone: () => Effect.succeed([]), onSome: (n) => n.lines }),
        (notes) => Effect.zipRight(Effect.zipRight(onReady(notes), Memory.collectAfterStart("5 seconds")), Effect.never)
      ))
  ).pipe(
    Effect.provide(Roles.layerLogging(config, service)),
    // spans of everything the role does, exported when OTEL_EXPORTER_OTLP_ENDPOINT is set
    (run) => Effect.flatMap(loadConfig(Tracing.fromEnv(service)), (tracing) => Effect.provide(run, Tracing.layer(tracing, version)))
  )

const hostOption = Options.text("host").pipe(
  Options.withDescription("Address other runners use to reach this one (default: TROUPE_RUNNER_HOST or 127.0.0.1)"),
  Options.optional
)
const portOption = Options.integer("port").pipe(
  Options.withDescription("Port for runner-to-runner traffic (default: TROUPE_RUNNER_PORT or 34431)"),
  Options.optional
)

/** The role commands, given the app (and more `troupe admin …` subcommands from other folders). */
export const roleCommands = (app: Roles.App, adminExtra: ReadonlyArray<ExtraCommand> = []) => {
  const start = Command.make("start", {}, () =>
    Effect.gen(function*() {
      const config = yield* loadConfig(TroupeConfig.fromEnv)
      yield* checkAppConfig(app, "start", config)
      const masterKeys = yield* Roles.resolveMasterKeys(config).pipe(Effect.mapError((m) => new StartupError(`invalid configuration: ${m}`)))
      const url = Roles.displayUrl(config)
      yield* runRole(
        app.version,
        "start",
        config,
        Roles.layerStart(app, config, masterKeys),
        (notes) =>
          Effect.zipRight(
            Effect.logInfo(`Troupe is ready at ${url}${notes.length > 0 ? ` (${notes.join("; ")})` : ""}`).pipe(
              Effect.annotateLogs({ url, data_dir: config.dataDir, database: config.database._tag, cache: config.cache._tag, blob_store: config.blobStore._tag })
            ),
            process.stdout.isTTY ? say(`\n  Troupe is ready at ${url}\n  data: ${config.dataDir}\n${notes.map((n) => `  ${n}\n`).join("")}`) : Effect.void
          )
      )
    })).pipe(
      Command.withDescription(
        "Run everything in one process: gateway, one runner, media services. Without DATABASE_URL, REDIS_URL and S3_* it uses an embedded Postgres, an in-memory cache and a blob folder in TROUPE_DATA_DIR (default ./.troupe)."
      )
    )

  const runner = Command.make("runner", { host: hostOption, port: portOption }, ({ host, port }) =>
    Effect.gen(function*() {
      const config = yield* loadConfig(TroupeConfig.fromEnv)
      const fromEnv = yield* loadConfig(TroupeConfig.runnerAddressFromEnv)
      if (config.database._tag !== "Postgres") {
        return yield* Effect.fail(new StartupError("invalid configuration: DATABASE_URL: is required for `troupe runner` (runners share state through Postgres)"))
      }
      const address = {
        host: Option.getOrElse(host, () => fromEnv.host),
        port: Option.getOrElse(port, () => fromEnv.port),
        listenHost: fromEnv.listenHost
      }
      if (address.port < 1 || address.port > 65535) {
        return yield* Effect.fail(new StartupError("invalid configuration: --port: must be a port number between 1 and 65535"))
      }
      yield* checkAppConfig(app, "runner", config)
      const masterKeys = yield* Roles.resolveMasterKeys(config).pipe(Effect.mapError((m) => new StartupError(`invalid configuration: ${m}`)))
      yield* runRole(
        app.version,
        "runner",
        config,
        Roles.layerRunner(app, config, address, masterKeys),
        (notes) =>
          Effect.logInfo(`Runner ready at ${address.host}:${address.port}${notes.length > 0 ? ` (${notes.join("; ")})` : ""}`).pipe(
            Effect.annotateLogs({ runner: `${address.host}:${address.port}`, http: Roles.displayUrl(config) })
          )
      )
    })).pipe(
      Command.withDescription(
        "Host entity shards and the skill host. Run several against the same Postgres (DATABASE_URL); each needs an address the others can reach (--host/--port or TROUPE_RUNNER_HOST/TROUPE_RUNNER_PORT). Health and metrics are served on TROUPE_PORT."
      )
    )

  const gateway = Command.make("gateway", {}, () =>
    Effect.gen(function*() {
      const config = yield* loadConfig(TroupeConfig.fromEnv)
      if (config.database._tag !== "Postgres") {
        return yield* Effect.fail(new StartupError("invalid configuration: DATABASE_URL: is required for `troupe gateway` (it reaches runners through Postgres)"))
      }
      yield* checkAppConfig(app, "gateway", config)
      const url = Roles.displayUrl(config)
      yield* runRole(app.version, "gateway", config, Roles.layerGateway(app, config), () => Effect.logInfo(`Gateway ready at ${url}`))
    })).pipe(
      Command.withDescription(
        "Serve the public HTTP API as a stateless edge. It hosts no entities; it reaches them on the runners through the cluster (needs DATABASE_URL). Run as many as you like behind a load balancer."
      )
    )

  const migrate = Command.make("migrate", {}, () =>
    Effect.gen(function*() {
      const config = yield* loadConfig(TroupeConfig.fromEnv)
      const applied = yield* Migrations.run(Roles.allMigrations(app)).pipe(
        Effect.provide(Database.layerFrom(config.database, "troupe-migrate")),
        Effect.provide(Roles.layerLogging(config, "migrate"))
      )
      yield* say(applied.length === 0 ? "Database is up to date." : `Applied ${applied.length} migration(s): ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
    })).pipe(Command.withDescription("Apply database migrations and exit (start, runner and gateway also do this when they start)."))

  const rotateMasterKey = Command.make("rotate-master-key", {}, () =>
    Effect.gen(function*() {
      const config = yield* loadConfig(TroupeConfig.fromEnv)
      const masterKeys = yield* Roles.resolveMasterKeys(config).pipe(Effect.mapError((m) => new StartupError(`invalid configuration: ${m}`)))
      const { rewrapped } = yield* Migrations.run(Roles.allMigrations(app)).pipe(
        Effect.zipRight(Effect.flatMap(KeyRing.KeyRing, (keys) => keys.rotateMasterKey)),
        Effect.provide(KeyRing.layer(masterKeys)),
        Effect.provide(Database.layerFrom(config.database, "troupe-admin")),
        Effect.provide(Roles.layerLogging(config, "admin"))
      )
      yield* say(`Re-wrapped ${rewrapped} data key(s) with master key ${masterKeys.current.id}. The previous master keys are no longer needed.`)
    })).pipe(
      Command.withDescription(
        "Re-wrap every data key with the current master key (TROUPE_MASTER_KEY), reading old ones with TROUPE_PREVIOUS_MASTER_KEYS. Encrypted data is not touched. Afterwards the previous keys can be removed."
      )
    )

  /** Run an admin task against the configured database (migrated first). */
  const withDatabase = <A, E>(service: string, task: Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.gen(function*() {
      const config = yield* loadConfig(TroupeConfig.fromEnv)
      return yield* Migrations.run(Roles.allMigrations(app)).pipe(
        Effect.zipRight(task),
        Effect.provide(Database.layerFrom(config.database, `troupe-${service}`)),
        Effect.provide(Roles.layerLogging(config, service))
      ).pipe(Effect.map((a) => ({ a, config })))
    })

  const shards = Command.make("shards", {
    watch: Options.boolean("watch").pipe(Options.withDescription("Redraw every second until Ctrl-C")),
    json: Options.boolean("json").pipe(Options.withDescription("Print the snapshot as JSON"))
  }, ({ json, watch }) =>
    Effect.gen(function*() {
      const config = yield* loadConfig(TroupeConfig.fromEnv)
      const read = ClusterAdmin.snapshot(config.cluster.shardsPerGroup)
      if (!watch) {
        const { a } = yield* withDatabase("admin", read)
        return yield* say(json ? JSON.stringify(a, null, 2) : ClusterAdmin.render(a))
      }
      yield* withDatabase("admin", Effect.forever(Effect.gen(function*() {
        const table = ClusterAdmin.render(yield* read)
        // home, draw, clear what is left below: the table redraws in place without scrolling
        yield* Effect.sync(() => void process.stdout.write(`\x1b[H${table.split("\n").map((l) => `${l}\x1b[K`).join("\n")}\n\x1b[J`))
        yield* Effect.sleep("1 second")
      })))
    })).pipe(Command.withDescription("Show the cluster's runners: address, health, last heartbeat, shards held and active entities per type (reads DATABASE_URL like a runner)."))

  const drain = Command.make("drain", {
    runner: Args.text({ name: "runner" }).pipe(Args.withDescription("The runner's address, host:port, as `troupe admin shards` shows it")),
    undo: Options.boolean("undo").pipe(Options.withDescription("Let the runner take shards again"))
  }, ({ runner, undo }) =>
    Effect.gen(function*() {
      yield* withDatabase("admin", ClusterAdmin.drain(runner, { undo })).pipe(
        Effect.catchTags({
          UnknownRunner: (e) => Effect.fail(new StartupError(`no runner ${e.address} in the cluster (runners: ${e.known.join(", ") || "none"})`)),
          LastRunner: (e) => Effect.fail(new StartupError(`${e.address} is the only runner not drained: its shards would have nowhere to go`))
        })
      )
      yield* say(undo
        ? `Runner ${runner} takes shards again.`
        : `Runner ${runner} is drained: its shards move to the other runners within a few seconds (watch with \`troupe admin shards --watch\`); it holds none until \`troupe admin drain --undo ${runner}\`.`)
    })).pipe(Command.withDescription("Move a runner's shards to the other runners before maintenance (it stays up, holding none); --undo lets it take shards again."))

  /** Backup settings: the same database and blob store as the other roles, and TROUPE_BACKUP_KEY. */
  const backupSettings = Effect.gen(function*() {
    const config = yield* loadConfig(TroupeConfig.fromEnv)
    const key = yield* Effect.mapError(Backup.parseKey(process.env.TROUPE_BACKUP_KEY), (e) => new StartupError(e.message))
    return { database: config.database, blobStore: config.blobStore, key, version: app.version }
  })

  const backup = Command.make("backup", {
    to: Options.text("to").pipe(Options.withDescription("A directory, or s3://bucket/prefix (with the S3_* settings of the blob store)"))
  }, ({ to }) =>
    Effect.gen(function*() {
      const settings = yield* backupSettings
      const location = Backup.parseLocation(to)
      const manifest = yield* Backup.backup(settings, location, Backup.terminalProgress()).pipe(Effect.mapError((e) => new StartupError(`backup failed: ${e.message}`)))
      yield* say(`Backup ${manifest.id} written to ${to} (${manifest.database.kind} database, ${manifest.blobs} blob(s), ${manifest.files.reduce((n, f) => n + f.bytes, 0)} bytes encrypted).`)
    })).pipe(Command.withDescription(
      "Write an encrypted (TROUPE_BACKUP_KEY, AES-256-GCM) snapshot of the database (pg_dump on Postgres, the embedded database's dump otherwise: stop `troupe start` first) and the blob store, with a manifest of checksums."
    ))

  const restore = Command.make("restore", {
    from: Options.text("from").pipe(Options.withDescription("A backup's folder, or a directory or s3://bucket/prefix holding backups (the newest is restored)")),
    force: Options.boolean("force").pipe(Options.withDescription("Replace what the configured database and blob store hold"))
  }, ({ force, from }) =>
    Effect.gen(function*() {
      const settings = yield* backupSettings
      const manifest = yield* Backup.restore(settings, Backup.parseLocation(from), { force, progress: Backup.terminalProgress() }).pipe(
        Effect.mapError((e) => new StartupError(`restore refused: ${e.message}`))
      )
      yield* say(`Restored backup ${manifest.id} (${manifest.created_at}): ${manifest.database.kind} database and ${manifest.blobs} blob(s). Start the server with the same TROUPE_MASTER_KEY as when it was taken.`)
    })).pipe(Command.withDescription(
      "Restore a backup into the configured (empty) database and blob store; every checksum is verified first. Refuses a database or blob store that holds data unless --force."
    ))

  const admin = Command.make("admin").pipe(
    Command.withDescription("Operator tasks."),
    Command.withSubcommands([rotateMasterKey, shards, drain, backup, restore, ...adminExtra])
  )

  return [start, runner, gateway, migrate, admin] as const
}

/**
 * A command another folder adds (`preview`, `skill`, `admin`): it needs only the platform
 * services the CLI provides. Its parsed-arguments type is private to it, hence `any`, as in
 * @effect/cli's own `withSubcommands`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ExtraCommand = Command.Command<string, CliContext, unknown, any>

/** What the CLI provides to every command. */
export type CliContext = NodeContext.NodeContext

/** The `troupe` command with the role commands and any extra ones. */
export const makeCli = (
  app: Roles.App,
  extra: ReadonlyArray<ExtraCommand> = [],
  adminExtra: ReadonlyArray<ExtraCommand> = []
) => {
  const [start, runner, gateway, migrate, admin] = roleCommands(app, adminExtra)
  const troupe = Command.make("troupe").pipe(
    Command.withDescription(
      "Troupe: chat with AI team-mates that use sandboxed WASM skills. Pick a role to run; `troupe start` runs everything in one process."
    ),
    Command.withSubcommands([start, runner, gateway, migrate, admin, ...extra])
  )
  return Command.run(troupe, { name: "troupe", version: app.version })
}

/**
 * Help and usage text for a pipe or a file (stdout not a terminal, or `NO_COLOR` set): without
 * colour codes, and the command list without the padding that aligns descriptions to the longest
 * command (a column far beyond a terminal's width).
 */
export const plainText = (text: string): string =>
  // eslint-disable-next-line no-control-regex
  text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/^( {2}- \S.*?\S) {3,}(?=\S)/gm, "$1  ")

/** A console whose `log` (where @effect/cli prints help) writes `plainText`. */
const plainConsole = (console: Console.Console): Console.Console => ({
  ...console,
  log: (...args: ReadonlyArray<unknown>) => console.log(...args.map((a) => (typeof a === "string" ? plainText(a) : a)))
})

/** Run the CLI with process arguments; startup errors print one line and exit 1. */
export const main = (
  app: Roles.App,
  extra: ReadonlyArray<ExtraCommand> = [],
  argv: ReadonlyArray<string> = process.argv,
  adminExtra: ReadonlyArray<ExtraCommand> = []
) =>
  makeCli(app, extra, adminExtra)(argv).pipe(
    (run) => (process.stdout.isTTY && !process.env.NO_COLOR ? run : Console.consoleWith((console) => Effect.withConsole(run, plainConsole(console)))),
    Effect.catchAll((error) =>
      Effect.sync(() => {
        if (error instanceof StartupError) process.stderr.write(`troupe: ${error.message}\n`)
        else if (ConfigError.isConfigError(error)) process.stderr.write(`troupe: invalid configuration: ${TroupeConfig.formatError(error)}\n`)
        else if (isValidationError(error)) {
          // @effect/cli has already printed the usage error
        } else process.stderr.write(`troupe: ${describe(error)}\n`)
        process.exitCode = 1
      })
    ),
    Effect.catchAllDefect((defect) =>
      Effect.sync(() => {
        process.stderr.write(`troupe: fatal: ${describe(defect)}\n`)
        process.exitCode = 1
      })
    ),
    Effect.provide(NodeContext.layer)
  )

const isValidationError = (e: unknown): boolean =>
  typeof e === "object" && e !== null && "_tag" in e && typeof (e as { _tag: unknown })._tag === "string" &&
  ["CommandMismatch", "CorrectedFlag", "HelpRequested", "InvalidArgument", "InvalidValue", "MissingValue", "MissingFlag", "MultipleValuesDetected", "MissingSubcommand", "NoBuiltInMatch", "UnclusteredFlag"].includes((e as { _tag: string })._tag)

const describe = (e: unknown): string => {
  const cause = typeof e === "object" && e !== null ? (e as { cause?: unknown }).cause : undefined
  if (cause instanceof Error && cause.message && typeof e === "object" && e !== null && "_tag" in e) {
    return `${(e as { message?: string }).message ?? String((e as { _tag: unknown })._tag)}: ${cause.message}`
  }
  if (e instanceof Error) return e.message
  if (typeof e === "object" && e !== null) {
    const o = e as { _tag?: string; message?: string }
    if (o.message) return o._tag ? `${o._tag}: ${o.message}` : o.message
    try {
      return JSON.stringify(e)
    } catch {
      return String(e)
    }
  }
  return String(e)
}
