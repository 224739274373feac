/**
 * The cluster: how a process joins the Effect cluster that shards Troupe's entities.
 *
 * - `layerSingle` — one SQL-backed runner in this process (`troupe start`);
 * - `layerRunner` — a socket runner with SQL storage at an explicit address (`troupe runner`);
 * - `layerClientOnly` — a member that sends to entities but hosts none (`troupe gateway`).
 *
 * The sharding configuration is built here in full from `ClusterConfig`, never from the
 * environment (the cluster's own `layerFromEnv` silently reads `HOST`/`PORT`).
 */
import * as MessageStorage from "@effect/cluster/MessageStorage"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import * as Sharding from "@effect/cluster/Sharding"
import type * as ShardId from "@effect/cluster/ShardId"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as Singleton from "@effect/cluster/Singleton"
import * as Snowflake from "@effect/cluster/Snowflake"
import * as SocketRunner from "@effect/cluster/SocketRunner"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import { layerClientProtocol, layerSocketServer } from "@effect/platform-node/NodeClusterSocket"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ClusterAdmin from "./ClusterAdmin.ts"
import type { ClusterConfig, RunnerAddressConfig } from "./Config.ts"
import * as Database from "./Database.ts"

/** The table prefix of the cluster's storage. */
export const tablePrefix = "cluster"

/** The complete sharding configuration for a member at `address` (none: client only). */
export const shardingConfig = (
  config: ClusterConfig,
  address: Option.Option<RunnerAddressConfig>
): ShardingConfig.ShardingConfig["Type"] => ({
  ...ShardingConfig.defaults,
  runnerAddress: Option.map(address, (a) => RunnerAddress.make(a.host, a.port)),
  runnerListenAddress: Option.map(address, (a) => RunnerAddress.make(a.listenHost, a.port)),
  shardsPerGroup: config.shardsPerGroup,
  shardLockExpiration: config.shardLockExpiration,
  shardLockRefreshInterval: config.shardLockRefreshInterval,
  shardLockDisableAdvisory: !config.advisoryLocks,
  runnerHealthCheckInterval: config.runnerHealthCheckInterval,
  refreshAssignmentsInterval: config.refreshAssignmentsInterval,
  entityMessagePollInterval: config.messagePollInterval,
  entityMaxIdleTime: Duration.minutes(5),
  entityTerminationTimeout: config.entityTerminationTimeout,
  sendRetryInterval: Duration.millis(100)
})

type Members = Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage

/**
 * A storage layer built under the database's startup lock: the cluster creates its tables when
 * its storage is built, and runners started together would otherwise race creating them.
 */
const underStartupLock = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  Layer.orDie(Layer.scopedContext(Effect.flatMap(Effect.scope, (scope) => Database.withStartupLock(Layer.buildWithScope(layer, scope)))))

const layerMessageStorage = underStartupLock(SqlMessageStorage.layer)
const layerRunnerStorage = underStartupLock(SqlRunnerStorage.layer)

/** Storage shared by every member kind: messages and runners in SQL (drained runners left out of the ring). */
const layerStorage = Layer.mergeAll(layerMessageStorage, ClusterAdmin.layerDrainable.pipe(Layer.provide(layerRunnerStorage)))

/** One runner in this process, storing messages in SQL (the embedded default or a lone server). */
export const layerSingle = (config: ClusterConfig): Layer.Layer<Members, never, SqlClient.SqlClient> =>
  Sharding.layer.pipe(
    Layer.provideMerge(Runners.layerNoop),
    Layer.provideMerge(layerMessageStorage),
    Layer.provide([layerRunnerStorage, RunnerHealth.layerNoop]),
    Layer.provide(ShardingConfig.layer(shardingConfig(config, Option.some({ host: "127.0.0.1", port: 34431, listenHost: "127.0.0.1" }))))
  )

/**
 * The runner storage of a runner that joins the cluster only once `ready` opens: registering makes
 * the others hand it shards at once, and messages for them would wait while it is still starting
 * (building its entities, under load for many seconds). The cluster retries registering every
 * second until then.
 */
const layerJoinWhenReady = (ready: Effect.Latch) =>
  Layer.effect(
    RunnerStorage.RunnerStorage,
    Effect.map(RunnerStorage.RunnerStorage, (storage): RunnerStorage.RunnerStorage["Type"] => ({
      ...storage,
      register: (runner, healthy) => Effect.zipRight(ready.await, storage.register(runner, healthy))
    }))
  )

/** A runner reachable by the others at `address`, hosting shards; it joins when `ready` opens (default: at once). */
export const layerRunner = (
  config: ClusterConfig,
  address: RunnerAddressConfig,
  ready: Effect.Latch = Effect.unsafeMakeLatch(true)
): Layer.Layer<Members, never, SqlClient.SqlClient> =>
  SocketRunner.layer.pipe(
    Layer.provide(layerJoinWhenReady(ready)),
    Layer.provide(RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(layerClientProtocol))),
    Layer.provide([layerSocketServer, layerClientProtocol]),
    Layer.provideMerge(layerStorage),
    Layer.provide(ShardingConfig.layer(shardingConfig(config, Option.some(address)))),
    Layer.provide(RpcSerialization.layerMsgPack),
    Layer.orDie
  ) as Layer.Layer<Members, never, SqlClient.SqlClient>

/** A member that sends to entities but hosts none (the gateway). */
export const layerClientOnly = (config: ClusterConfig): Layer.Layer<Members, never, SqlClient.SqlClient> =>
  SocketRunner.layerClientOnly.pipe(
    Layer.provide(layerClientProtocol),
    Layer.provideMerge(layerStorage),
    Layer.provide(ShardingConfig.layer(shardingConfig(config, Option.none()))),
    Layer.provide(RpcSerialization.layerMsgPack)
  )

/** The smallest Snowflake id of a message created at `epochMillis` (ids start with their time). */
export const snowflakeAt = (epochMillis: number): bigint =>
  BigInt(Math.max(0, epochMillis - Snowflake.constEpochMillis)) << 22n

/**
 * Delete processed messages, and replies whose message is gone, created more than `retention`
 * ago. Unprocessed messages are never deleted. A command re-sent after its row was deleted runs
 * again, so keep `retention` longer than any client retries (handlers are idempotent anyway).
 */
export const deleteProcessed = (retention: Duration.Duration): Effect.Effect<{ messages: number; replies: number }, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const cutoff = snowflakeAt(Date.now() - Duration.toMillis(retention)).toString()
    const messages = sql(`${tablePrefix}_messages`)
    const replies = sql(`${tablePrefix}_replies`)
    const deletedMessages = yield* sql<{ id: string }>`
      DELETE FROM ${messages} WHERE processed = TRUE AND id < ${cutoff} RETURNING id`
    const deletedReplies = yield* sql<{ id: string }>`
      DELETE FROM ${replies} r WHERE r.id < ${cutoff}
      AND NOT EXISTS (SELECT 1 FROM ${messages} m WHERE m.request_id = r.request_id) RETURNING id`
    return { messages: deletedMessages.length, replies: deletedReplies.length }
  })

/**
 * Delete the processed messages addressed to one entity, and their replies: what an erased
 * account would otherwise leave behind in the cluster's tables (persisted payloads such as a
 * registration) until the retention job comes. Unprocessed messages stay: they are still to be
 * delivered. Returns the number of messages deleted.
 */
export const deleteProcessedFor = (entityType: string, entityId: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const messages = sql(`${tablePrefix}_messages`)
    const replies = sql(`${tablePrefix}_replies`)
    yield* sql`DELETE FROM ${replies} WHERE request_id IN (
      SELECT request_id FROM ${messages} WHERE entity_type = ${entityType} AND entity_id = ${entityId} AND processed = TRUE)`
    const deleted = yield* sql<{ id: string }>`
      DELETE FROM ${messages} WHERE entity_type = ${entityType} AND entity_id = ${entityId} AND processed = TRUE RETURNING id`
    return deleted.length
  })

/** The retention job, run by exactly one runner of the cluster at a time (a cluster singleton). */
export const layerRetention = (config: ClusterConfig): Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient> =>
  Singleton.make(
    "troupe-cluster-retention",
    deleteProcessed(config.retention).pipe(
      Effect.tap(({ messages, replies }) =>
        messages + replies > 0 ? Effect.logInfo("Deleted processed cluster rows").pipe(Effect.annotateLogs({ messages, replies })) : Effect.void
      ),
      Effect.catchAllCause((cause) => Effect.logWarning("Cluster retention failed", cause)),
      Effect.repeat(Schedule.spaced(config.retentionInterval)),
      Effect.asVoid
    )
  )

/**
 * Watches which shards this runner still owns, for the waiters of `shardReleased`: one timer per
 * process, only while someone waits.
 */
class ShardWatch {
  private readonly waiting = new Map<string, { readonly shardId: ShardId.ShardId; readonly resumes: Set<() => void> }>()
  private timer: ReturnType<typeof setInterval> | undefined
  constructor(private readonly sharding: Sharding.Sharding["Type"]) {}

  wait(shardId: ShardId.ShardId, resume: () => void): () => void {
    if (!this.sharding.hasShardId(shardId)) {
      resume()
      return () => {}
    }
    const key = shardId.toString()
    let entry = this.waiting.get(key)
    if (!entry) {
      entry = { shardId, resumes: new Set() }
      this.waiting.set(key, entry)
    }
    entry.resumes.add(resume)
    this.timer ??= setInterval(() => this.check(), shardWatchIntervalMs)
    this.timer.unref?.()
    const own = entry
    return () => {
      own.resumes.delete(resume)
      if (own.resumes.size === 0 && this.waiting.get(key) === own) this.waiting.delete(key)
      this.stopIfIdle()
    }
  }

  private check() {
    for (const [key, entry] of this.waiting) {
      if (this.sharding.hasShardId(entry.shardId)) continue
      this.waiting.delete(key)
      for (const resume of entry.resumes) resume()
    }
    this.stopIfIdle()
  }

  private stopIfIdle() {
    if (this.waiting.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }
}

/** How often `shardReleased` looks (the hand-over waits at most this long for a stream to end). */
const shardWatchIntervalMs = 100

const watches = new WeakMap<object, ShardWatch>()

/**
 * Completes when this runner no longer owns `shardId`: the shard is being handed to another
 * runner (a runner joined, a drain) or this runner is stopping. An entity ends its long-lived
 * streams with it, so a graceful hand-over does not wait for `entityTerminationTimeout`: the
 * cluster releases a shard only once every entity on it has stopped, and a stream to a client
 * never stops on its own. The client (the gateway) resubscribes and reaches the new owner.
 */
export const shardReleased = (shardId: ShardId.ShardId): Effect.Effect<void, never, Sharding.Sharding> =>
  Effect.flatMap(Sharding.Sharding, (sharding) => {
    let watch = watches.get(sharding)
    if (!watch) {
      watch = new ShardWatch(sharding)
      watches.set(sharding, watch)
    }
    const own = watch
    return Effect.async<void>((resume) => {
      const cancel = own.wait(shardId, () => resume(Effect.void))
      return Effect.sync(cancel)
    })
  })

/** Errors of a call that may succeed when retried (the target runner died or shards are moving). */
export const transientTags: ReadonlySet<string> = new Set([
  "SocketError",
  "RpcClientError",
  "RunnerUnavailable",
  "EntityNotAssignedToRunner",
  "RunnerNotRegistered",
  "MailboxFull",
  "PersistenceError"
])

/** Whether an error is a transient cluster failure. */
export const isTransient = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "_tag" in error && transientTags.has(String((error as { _tag: unknown })._tag))

class Transient<E> {
  constructor(readonly cause: Cause.Cause<E>) {}
}

/**
 * Retry a call to an entity while it fails for cluster reasons, up to `within`: the runner died
 * mid-call (a socket error, arriving as an error or a defect), shards are moving (not assigned,
 * runner unavailable), or the entity was stopped under the call by a shard hand-over (the reply
 * is an interruption that did not come from this fiber). Safe for reads, and for commands
 * because they carry a primary key (the cluster de-duplicates them) and handlers are idempotent.
 */
export const retryTransient = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  within: Duration.DurationInput = "30 seconds"
): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.catchAllCause((cause): Effect.Effect<never, E | Transient<E>> => {
      if (Cause.isInterruptedOnly(cause)) return Effect.fail(new Transient(cause))
      const defect = Cause.dieOption(cause)
      if (Option.isSome(defect) && isTransient(defect.value)) return Effect.fail(new Transient(cause))
      return Effect.failCause(cause)
    }),
    Effect.retry({
      schedule: Schedule.exponential("50 millis", 1.5).pipe(
        Schedule.union(Schedule.spaced("500 millis")),
        Schedule.upTo(within)
      ),
      while: (e) => e instanceof Transient || isTransient(e)
    }),
    Effect.catchAll((e: E | Transient<E>) => (e instanceof Transient ? Effect.failCause(e.cause) : Effect.fail(e)))
  )
