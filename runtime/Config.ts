/**
 * Troupe's configuration: read once from the environment at a role's entry point (with Effect
 * `Config`) and handed inward as the `TroupeConfig` service. Code below the entry point never
 * reads `process.env`.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"

/** Where relational state lives. */
export type DatabaseConfig =
  | { readonly _tag: "Postgres"; readonly url: Redacted.Redacted; readonly maxConnections: number }
  | { readonly _tag: "Embedded"; readonly dataDir: string }

/** Where the shared cache lives. */
export type CacheConfig =
  | { readonly _tag: "Redis"; readonly url: Redacted.Redacted; readonly keyPrefix: string }
  | { readonly _tag: "Memory"; readonly maxEntries: number }

/** Where blobs (uploads, skill modules, exports) live. */
export type BlobStoreConfig =
  | {
    readonly _tag: "S3"
    readonly endpoint: Option.Option<string>
    readonly bucket: string
    readonly region: string
    readonly accessKeyId: Option.Option<string>
    readonly secretAccessKey: Option.Option<Redacted.Redacted>
    readonly forcePathStyle: boolean
  }
  | { readonly _tag: "Filesystem"; readonly root: string }

/** Timings of the cluster: they decide how fast a dead runner's shards move elsewhere. */
export interface ClusterConfig {
  readonly shardsPerGroup: number
  readonly shardLockExpiration: Duration.Duration
  readonly shardLockRefreshInterval: Duration.Duration
  readonly runnerHealthCheckInterval: Duration.Duration
  readonly refreshAssignmentsInterval: Duration.Duration
  readonly messagePollInterval: Duration.Duration
  /** How long a stopping runner waits for an entity to finish before interrupting it. */
  readonly entityTerminationTimeout: Duration.Duration
  readonly advisoryLocks: boolean
  /** Processed cluster messages and replies older than this are deleted. */
  readonly retention: Duration.Duration
  readonly retentionInterval: Duration.Duration
}

/** The whole configuration of a Troupe process. */
export interface TroupeConfigShape {
  readonly dataDir: string
  readonly http: {
    readonly host: string
    readonly port: number
    /**
     * The URL users reach this server at, printed at start and used in links, the passkeys'
     * relying party and the SSO callbacks. `fromEnv` always sets it: `TROUPE_PUBLIC_URL`, or
     * `defaultPublicUrl` of the listen address.
     */
    readonly publicUrl: Option.Option<string>
    /** The admin listener (`/metrics`, `/health/detailed`): loopback by default; port 0 = any free port. */
    readonly admin: {
      readonly host: string
      readonly port: number
      /** Bearer token the admin routes need (`TROUPE_METRICS_TOKEN`); none: open to whoever reaches the listener. */
      readonly token: Option.Option<Redacted.Redacted>
    }
  }
  readonly database: DatabaseConfig
  readonly cache: CacheConfig
  readonly blobStore: BlobStoreConfig
  readonly cluster: ClusterConfig
  readonly log: { readonly level: LogLevel.LogLevel; readonly format: "json" | "pretty" }
  /** Master keys for envelope encryption: none means "generate one in the data dir" (embedded default only). */
  readonly masterKey: Option.Option<Redacted.Redacted>
  readonly previousMasterKeys: ReadonlyArray<Redacted.Redacted>
}

/** The configuration service. */
export class TroupeConfig extends Context.Tag("troupe/runtime/Config")<TroupeConfig, TroupeConfigShape>() {}

/** Like `Config.validate`, but the error names the variable (validate alone loses the path). */
const check = <A>(name: string, message: string, ok: (a: A) => boolean) => (config: Config.Config<A>) =>
  Config.mapOrFail(config, (a) => (ok(a) ? Either.right(a) : Either.left(ConfigError.InvalidData([name], message))))

const loopbackOrAny = new Set(["0.0.0.0", "::", "127.0.0.1", "::1", "localhost", ""])

/**
 * The public URL of a server listening on `host:port` when `TROUPE_PUBLIC_URL` is not set:
 * `http://localhost:<port>` when it listens on every address or on loopback (browsers treat
 * localhost as a secure context, so passkeys work there, with `localhost` as the relying party),
 * else `http://<host>:<port>`.
 */
export const defaultPublicUrl = (http: { readonly host: string; readonly port: number }): string => {
  const host = loopbackOrAny.has(http.host) ? "localhost" : http.host.includes(":") ? `[${http.host}]` : http.host
  return `http://${host}:${http.port}`
}

const port = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    check(name, "must be a port number between 1 and 65535", (n) => n >= 1 && n <= 65535)
  )

const positiveDuration = (name: string, fallback: Duration.DurationInput) =>
  Config.duration(name).pipe(
    Config.withDefault(Duration.decode(fallback)),
    check(name, "must be a positive duration, e.g. \"5 seconds\"", (d: Duration.Duration) => Duration.greaterThan(d, Duration.zero))
  )

const redactedUrl = (name: string, schemes: ReadonlyArray<string>) =>
  Config.redacted(name).pipe(
    Config.mapOrFail((value) => {
      const raw = Redacted.value(value)
      let parsed: URL | undefined
      try {
        parsed = new URL(raw)
      } catch {
        parsed = undefined
      }
      return parsed && schemes.includes(parsed.protocol.replace(/:$/, ""))
        ? Either.right(value)
        : Either.left(
          ConfigError.InvalidData([name], `must be a URL starting with ${schemes.map((s) => `${s}://`).join(" or ")}`)
        )
    })
  )

const logLevel = Config.literal("all", "trace", "debug", "info", "warning", "error", "fatal", "none")("TROUPE_LOG_LEVEL").pipe(
  Config.withDefault("info" as const),
  Config.map((level) => LogLevel.fromLiteral(level === "warning" ? "Warning" : (level.charAt(0).toUpperCase() + level.slice(1)) as LogLevel.Literal))
)

const database: Config.Config<(dataDir: string) => DatabaseConfig> =
  Config.option(redactedUrl("DATABASE_URL", ["postgres", "postgresql"])).pipe(
    Config.zip(Config.integer("DATABASE_MAX_CONNECTIONS").pipe(Config.withDefault(10))),
    Config.map(([url, maxConnections]) => (dataDir: string): DatabaseConfig =>
      Option.match(url, {
        onNone: () => ({ _tag: "Embedded", dataDir: NodePath.join(dataDir, "pg") }),
        onSome: (url) => ({ _tag: "Postgres", url, maxConnections })
      })
    )
  )

const cache: Config.Config<CacheConfig> = Config.option(redactedUrl("REDIS_URL", ["redis", "rediss"])).pipe(
  Config.zip(Config.string("REDIS_KEY_PREFIX").pipe(Config.withDefault("troupe:"))),
  Config.map(([url, keyPrefix]): CacheConfig =>
    Option.match(url, {
      onNone: () => ({ _tag: "Memory", maxEntries: 100_000 }),
      onSome: (url) => ({ _tag: "Redis", url, keyPrefix })
    })
  )
)

const blobStore: Config.Config<(dataDir: string) => BlobStoreConfig> =
  Config.all({
    endpoint: Config.option(Config.string("S3_ENDPOINT")),
    bucket: Config.option(Config.string("S3_BUCKET")),
    region: Config.string("S3_REGION").pipe(Config.withDefault("us-east-1")),
    accessKeyId: Config.option(Config.string("S3_ACCESS_KEY_ID")),
    secretAccessKey: Config.option(Config.redacted("S3_SECRET_ACCESS_KEY")),
    forcePathStyle: Config.boolean("S3_FORCE_PATH_STYLE").pipe(Config.withDefault(true))
  }).pipe(
    Config.mapOrFail((s): Either.Either<(dataDir: string) => BlobStoreConfig, ConfigError.ConfigError> => {
      if (Option.isNone(s.bucket)) {
        if (Option.isSome(s.endpoint) || Option.isSome(s.accessKeyId)) {
          return Either.left(ConfigError.MissingData(["S3_BUCKET"], "is required when S3_ENDPOINT or S3_ACCESS_KEY_ID is set"))
        }
        return Either.right((dataDir) => ({ _tag: "Filesystem", root: NodePath.join(dataDir, "blobs") }))
      }
      if (Option.isSome(s.endpoint)) {
        try {
          const u = new URL(s.endpoint.value)
          if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error()
        } catch {
          return Either.left(ConfigError.InvalidData(["S3_ENDPOINT"], "must be an http:// or https:// URL"))
        }
      }
      if (Option.isSome(s.accessKeyId) !== Option.isSome(s.secretAccessKey)) {
        return Either.left(
          ConfigError.MissingData(
            [Option.isSome(s.accessKeyId) ? "S3_SECRET_ACCESS_KEY" : "S3_ACCESS_KEY_ID"],
            "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together"
          )
        )
      }
      const bucket = s.bucket.value
      return Either.right(() => ({ _tag: "S3", ...s, bucket }))
    })
  )

/**
 * Cluster timings. The defaults move a dead runner's shards to a live one in well under 8 s:
 * a lock not refreshed for `shardLockExpiration` may be taken over; live runners refresh
 * theirs every `shardLockRefreshInterval`.
 */
const cluster: Config.Config<ClusterConfig> = Config.all({
  shardsPerGroup: Config.integer("TROUPE_SHARDS").pipe(
    Config.withDefault(300),
    check("TROUPE_SHARDS", "must be between 1 and 10000", (n) => n >= 1 && n <= 10_000)
  ),
  shardLockExpiration: positiveDuration("TROUPE_SHARD_LOCK_EXPIRATION", "5 seconds"),
  shardLockRefreshInterval: positiveDuration("TROUPE_SHARD_LOCK_REFRESH", "1500 millis"),
  runnerHealthCheckInterval: positiveDuration("TROUPE_RUNNER_HEALTH_CHECK_INTERVAL", "2 seconds"),
  refreshAssignmentsInterval: positiveDuration("TROUPE_SHARD_REFRESH_INTERVAL", "1 second"),
  messagePollInterval: positiveDuration("TROUPE_MESSAGE_POLL_INTERVAL", "1 second"),
  entityTerminationTimeout: positiveDuration("TROUPE_ENTITY_TERMINATION_TIMEOUT", "10 seconds"),
  advisoryLocks: Config.boolean("TROUPE_CLUSTER_ADVISORY_LOCKS").pipe(Config.withDefault(false)),
  retention: positiveDuration("TROUPE_CLUSTER_RETENTION", "1 hour").pipe(
    // a caller reads its reply from storage after the message is processed: keep it long enough
    check("TROUPE_CLUSTER_RETENTION", "must be at least 1 minute", (d: Duration.Duration) => Duration.greaterThanOrEqualTo(d, Duration.minutes(1)))
  ),
  retentionInterval: positiveDuration("TROUPE_CLUSTER_RETENTION_INTERVAL", "5 minutes")
}).pipe(
  Config.mapOrFail((c) =>
    Duration.lessThan(c.shardLockRefreshInterval, c.shardLockExpiration)
      ? Either.right(c)
      : Either.left(ConfigError.InvalidData(["TROUPE_SHARD_LOCK_REFRESH"], "must be shorter than TROUPE_SHARD_LOCK_EXPIRATION"))
  )
)

const validMasterKey = (value: string): boolean => {
  const raw = Buffer.from(value.trim(), "base64")
  return raw.byteLength === 32 && raw.toString("base64").replace(/=+$/, "") === value.trim().replace(/=+$/, "")
}

const masterKey = (name: string) =>
  Config.redacted(name).pipe(
    Config.mapOrFail((value) =>
      validMasterKey(Redacted.value(value))
        ? Either.right(value)
        : Either.left(ConfigError.InvalidData([name], "must be 32 bytes encoded in base64 (generate one with `openssl rand -base64 32`)"))
    )
  )

/** The whole configuration, from the environment. */
export const fromEnv: Config.Config<TroupeConfigShape> = Config.all({
  dataDir: Config.string("TROUPE_DATA_DIR").pipe(Config.withDefault("./.troupe"), Config.map((dir) => NodePath.resolve(dir))),
  http: Config.all({
    host: Config.string("TROUPE_HOST").pipe(Config.withDefault("0.0.0.0")),
    port: port("TROUPE_PORT", 8080),
    publicUrl: Config.option(Config.string("TROUPE_PUBLIC_URL")),
    admin: Config.all({
      host: Config.string("TROUPE_ADMIN_HOST").pipe(Config.withDefault("127.0.0.1")),
      port: Config.integer("TROUPE_ADMIN_PORT").pipe(
        Config.withDefault(9464),
        check("TROUPE_ADMIN_PORT", "must be a port number between 0 (any free port) and 65535", (n) => n >= 0 && n <= 65535)
      ),
      token: Config.option(Config.redacted("TROUPE_METRICS_TOKEN").pipe(
        Config.mapOrFail((t) =>
          Redacted.value(t).trim().length >= 16
            ? Either.right(t)
            : Either.left(ConfigError.InvalidData(["TROUPE_METRICS_TOKEN"], "must be at least 16 characters (openssl rand -hex 24)"))
        )
      ))
    })
  }).pipe(
    Config.mapOrFail((http) => {
      if (Option.isNone(http.publicUrl)) return Either.right({ ...http, publicUrl: Option.some(defaultPublicUrl(http)) })
      try {
        const u = new URL(http.publicUrl.value)
        if (u.protocol === "http:" || u.protocol === "https:") return Either.right(http)
      } catch {
        // fall through
      }
      return Either.left(ConfigError.InvalidData(["TROUPE_PUBLIC_URL"], "must be an http:// or https:// URL"))
    })
  ),
  database,
  cache,
  blobStore,
  cluster,
  log: Config.all({
    level: logLevel,
    format: Config.literal("json", "pretty")("TROUPE_LOG_FORMAT").pipe(Config.withDefault("json" as const))
  }),
  masterKey: Config.option(masterKey("TROUPE_MASTER_KEY")),
  previousMasterKeys: Config.string("TROUPE_PREVIOUS_MASTER_KEYS").pipe(
    Config.withDefault(""),
    Config.mapOrFail((list) => {
      const keys = list.split(",").map((k) => k.trim()).filter((k) => k.length > 0)
      for (const k of keys) {
        if (!validMasterKey(k)) return Either.left(ConfigError.InvalidData(["TROUPE_PREVIOUS_MASTER_KEYS"], "must be a comma-separated list of base64 32-byte keys"))
      }
      return Either.right(keys.map((k) => Redacted.make(k)))
    })
  )
}).pipe(
  Config.map((c): TroupeConfigShape => ({ ...c, database: c.database(c.dataDir), blobStore: c.blobStore(c.dataDir) }))
)

/** A runner's address: where other runners reach it. Passed explicitly, never read from `HOST`/`PORT`. */
export interface RunnerAddressConfig {
  readonly host: string
  readonly port: number
  readonly listenHost: string
}

/**
 * `auto` stands for this machine's first non-internal IPv4 address: what each replica of a
 * scaled container service (`docker compose --scale runner=3`) should advertise.
 */
export const resolveRunnerHost = (host: string): string => {
  if (host !== "auto") return host
  for (const addresses of Object.values(NodeOs.networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === "IPv4" && !a.internal) return a.address
  }
  return NodeOs.hostname()
}

/** `TROUPE_RUNNER_HOST` (an address or `auto`) / `TROUPE_RUNNER_PORT` (the CLI's `--host`/`--port` override them). */
export const runnerAddressFromEnv: Config.Config<RunnerAddressConfig> = Config.all({
  host: Config.string("TROUPE_RUNNER_HOST").pipe(Config.withDefault("127.0.0.1"), Config.map(resolveRunnerHost)),
  port: port("TROUPE_RUNNER_PORT", 34431),
  listenHost: Config.string("TROUPE_RUNNER_LISTEN_HOST").pipe(Config.withDefault("0.0.0.0"))
})

/** Provide a fixed configuration (tests, tools). */
export const layer = (config: TroupeConfigShape): Layer.Layer<TroupeConfig> => Layer.succeed(TroupeConfig, config)

/**
 * One line naming the variable that is wrong, e.g.
 * `TROUPE_PORT: must be a port number between 1 and 65535`.
 */
export const formatError = (error: ConfigError.ConfigError): string => {
  const leaves: Array<string> = []
  const walk = (e: ConfigError.ConfigError): void => {
    switch (e._op) {
      case "And":
      case "Or":
        walk(e.left)
        if (e._op === "And") walk(e.right)
        return
      case "InvalidData":
      case "MissingData":
      case "SourceUnavailable":
      case "Unsupported": {
        const name = e.path.filter((p) => p.length > 0).join(".") || "configuration"
        const message = e._op === "MissingData" && e.message.startsWith("Expected")
          ? "is required"
          : e.message.replace(/^Expected /, "expected ")
        leaves.push(`${name}: ${message}`)
        return
      }
    }
  }
  walk(error)
  return leaves[0] ?? String(error)
}

/** Every environment variable the runtime reads (documented in the README; checked against docker-compose.yml). */
export const variables: ReadonlyArray<string> = [
  "TROUPE_DATA_DIR", "TROUPE_HOST", "TROUPE_PORT", "TROUPE_PUBLIC_URL", "TROUPE_LOG_LEVEL", "TROUPE_LOG_FORMAT",
  "TROUPE_ADMIN_HOST", "TROUPE_ADMIN_PORT", "TROUPE_METRICS_TOKEN",
  "DATABASE_URL", "DATABASE_MAX_CONNECTIONS", "REDIS_URL", "REDIS_KEY_PREFIX",
  "S3_ENDPOINT", "S3_BUCKET", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_FORCE_PATH_STYLE",
  "TROUPE_RUNNER_HOST", "TROUPE_RUNNER_PORT", "TROUPE_RUNNER_LISTEN_HOST",
  "TROUPE_SHARDS", "TROUPE_SHARD_LOCK_EXPIRATION", "TROUPE_SHARD_LOCK_REFRESH", "TROUPE_RUNNER_HEALTH_CHECK_INTERVAL",
  "TROUPE_SHARD_REFRESH_INTERVAL", "TROUPE_MESSAGE_POLL_INTERVAL", "TROUPE_CLUSTER_ADVISORY_LOCKS",
  "TROUPE_CLUSTER_RETENTION", "TROUPE_CLUSTER_RETENTION_INTERVAL", "TROUPE_MASTER_KEY", "TROUPE_PREVIOUS_MASTER_KEYS",
  // backups (runtime/Backup.ts): `troupe admin backup|restore` and the runners' schedule
  "TROUPE_BACKUP_KEY", "TROUPE_BACKUP_SCHEDULE", "TROUPE_BACKUP_TO", "TROUPE_BACKUP_KEEP"
]
